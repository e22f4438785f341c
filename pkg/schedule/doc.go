// Package schedule runs periodic jobs (what Celery beat did) on NATS
// message schedules, so that the server, not a leader among the workers,
// decides when a schedule fires: each tick fires once however many
// replicas run, and no election is needed.
//
// A schedule (Spec) is one message on sched.cron.<name> in JOBS, with a
// Nats-Schedule header (a cron expression with seconds, "@every 1h", or
// "@daily" and its kin) and, for cron, Nats-Schedule-Time-Zone. At each
// tick the server copies it onto sched.fire.<name>. Workers share the
// durable consumer "schedules" on sched.fire.> (Expander): whichever
// replica takes a firing turns it into its jobs, publishes them, and only
// then acks the firing.
//
// Each firing gets fresh job ids derived from the schedule's name and the
// second it fired (its stream timestamp, in UTC): "<name>:20261121T040000Z"
// for a single job, and for a batch "<name>:20261121T040000Z:<n>" in batch
// "<name>-20261121T040000Z", declared with its size. The ids are the
// jobs' Nats-Msg-Id, so a firing delivered twice (a replica died before
// its ack) publishes the same jobs again and the stream drops them; the
// recorder keeps one row per id as always. Ticks are whole seconds at
// least a second apart, so two firings never share an id.
//
// After downtime (NATS down, or no schedule consumer for a while) the
// missed ticks of a schedule collapse into one: the server fires once
// when it is back, then keeps to the schedule. Firings stored while no
// worker ran wait in the stream and are expanded when one starts. Set
// expires_in on a template so that a late firing's jobs are recorded
// expired rather than called hours late.
//
// A template's strings may name the firing: {{tick}} (RFC 3339, UTC),
// {{date}} (YYYY-MM-DD in the schedule's time zone) and {{name}}, so that
// "/v1/reports/{{date}}" asks each day for that day.
//
// Schedules come from configuration (schedules.<name>, applied by every
// worker at start: a schedule that did not change is left alone, so
// restarts do not shift an "@every" schedule's phase) or at run time from
// `switchyard schedule add|ls|rm`. Removing a schedule from the
// configuration does not delete it: the workers log it, and `switchyard
// schedule rm` deletes it.
package schedule
