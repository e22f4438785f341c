// Package limit makes each provider's limits hold for the whole fleet of
// worker replicas: a rate limit, a concurrency cap, a daily quota, and the
// provider's own words (Retry-After, rate-limit headers, bare 429s), with
// live jobs going first. Nothing here makes a network round trip per call:
// the replicas agree on who is in the fleet, and each enforces its share
// locally.
//
// # Membership, and why shares rather than a shared counter
//
// Every replica heartbeats a key member.<replica> in the KV bucket LIMITS,
// published with a per-message TTL (the bucket has LimitMarkerTTL, so an
// expired key reaches watchers as a purge), and follows the bucket with one
// long-lived watcher: listing keys returns incomplete lists while
// heartbeats are written. A provider's members are the replicas whose
// heartbeat names it. Each takes 1/N of the provider's rate and burst, and
// re-derives it whenever a member joins or leaves. A replica that stops
// removes its key at once; one that dies drops out when its key expires.
//
// The alternative, reserving batches of tokens from a shared counter, is
// exact under uneven demand but costs a round trip per batch, and a batch
// either is small (round trips at the call rate) or holds tokens others
// could use. Shares cost nothing per call, and the work-queue consumer
// that all replicas pull from keeps their demand even: while a backlog
// lasts, every replica with free slots is pulling from it.
//
// # The rate limit and its error bounds
//
// Each replica keeps a token bucket (GCRA, one timestamp) at rate R/N with
// burst max(1, B/N), where R and B are the fleet's rate and burst. The
// bucket schedules rather than refuses: a call takes a token and sleeps
// until its start time, so a backlog is spread evenly, one call every N/R
// seconds per replica, never a burst and then 429s. Whatever the order of
// takes, lanes and tokens handed back, the calls a replica starts in any
// window of length w are at most w·R/N + max(1, B/N), so with a stable
// membership the fleet starts at most
//
//	w·R + max(B, N)
//
// calls in any window w (network jitter moves calls across window edges by
// the jitter times R, no more). When membership changes:
//
//   - A replica joins: it announces itself before it reads the fleet, so it
//     starts at R/(N+1); the others learn of it through their watchers,
//     within milliseconds (a few ms on loopback in the tests). The excess
//     is at most the newcomer's burst share, B/(N+1), plus what the others
//     start at R/N before they hear of it, and the live calls they had
//     scheduled (at most 50 ms ahead): a few calls, once. (The watcher's
//     initial values can miss a key written meanwhile; the newcomer checks
//     them against the stream's subject index, so it does not start with
//     too large a share.)
//   - A replica stops: it leaves after its last call ended, and the others
//     raise their shares at once. No excess.
//   - A replica dies: the others keep their shares until its heartbeat
//     expires, about the TTL (default 3s) plus up to a second: the fleet
//     runs at (N-1)/N of the rate meanwhile. No excess.
//   - A replica loses NATS: it cannot fetch, so it calls only what it had
//     already admitted (50 ms of its share). If its watcher stalls while it
//     still can fetch, it keeps its view rather than dropping the others
//     (it only expires members while its own heartbeats come back), so its
//     share never rises on stale information.
//
// The fleet uses less than R when a replica serving the provider has no
// free slots for it: its unused share is not lent to the others. It also
// loses the lateness of its timers (about a millisecond a call) when a
// replica's burst share is 2 or less, as there is no slack to absorb it:
// measured 94-96 calls/s of 100 with four replicas of burst 2 each, 100
// with one or two.
//
// # Lanes
//
// Live and bulk draw on one bucket. A live call takes its token as soon as
// it is fetched (its start may be scheduled a little ahead). Bulk calls
// queue, in arrival order, and each takes its token only once it is due,
// and never the top tokens of the bucket (a tenth of the replica's burst,
// at least one, when the burst is two or more). So bulk holds no tokens
// ahead of time, and a live job finds one at once even while bulk
// saturates the rate; live may use the whole rate, and bulk gets what live
// leaves. Together with the live reserve of slots this keeps a live job's
// wait behind a bulk backlog to about one call's latency (6 ms measured at
// 40 calls/s under a 10-second bulk backlog). With a per-replica burst of 1
// there is no headroom, and a live job may wait one token interval.
//
// # Fetching only what can start
//
// A lane asks Admit before each fetch: it waits while the provider is
// paused or its quota is spent (jobs wait in the stream, spending no
// attempt), and under a rate admits only the calls that can start within
// 50 ms, counting the bulk calls already admitted and not yet started.
// Each fetched job then calls Wait just before its call, which takes its
// token and sleeps until its start, telling the server the job is in
// progress if that takes long (a pause). Observe reads each answer. With
// no rate, quota or pause in force, Admit, Wait and Observe take no lock
// and allocate nothing (0.1-0.2 µs per call together, BenchmarkNoLimit).
//
// # The provider's own words
//
// A 429 with Retry-After, or rate-limit headers saying no call is left
// (X-RateLimit-Remaining: 0 with X-RateLimit-Reset; RateLimit r=0 with t;
// RateLimit-Remaining/-Reset), pauses the provider: this replica at once,
// and every other one through the key pause.<provider>, which they all
// watch (published only when it extends the last pause by 250 ms or more,
// and expiring after it). A 503's Retry-After does the same when the
// provider is configured so. Calls already in flight cannot be recalled.
// Pauses are absolute wall-clock times, so clock skew between replicas adds
// to them; none lasts over MaxPause. A RateLimit-Policy with a window of a
// minute or less sets the fleet's rate when it is lower than the
// configured one (longer windows are quotas, honoured when spent).
//
// Every 429 also cuts this replica's rate (a 429 that says nothing else
// gets only this) to 0.7 of what its calls went at, once per round of
// calls: only a call started after the last cut counts, and not one
// started in the moment after it (ten calls' time, 200 ms at least), when
// the provider's bucket is still empty. Successes raise it again: linearly
// back to that rate within the configured recovery time, then on past it
// with a slope that doubles every recovery time (so a limit that went away
// is soon forgotten), until it reaches the configured share (or, with no
// rate configured, twice the rate cut): additive increase, multiplicative
// decrease. Each replica adapts on the 429s it gets; a fleet-wide limit
// refuses replicas in proportion to their calls, so they cut together,
// like TCP flows sharing a link. Each probe past the limit costs a few
// refused calls (one per replica, and those in flight), once per recovery
// time or so. Measured against a silent 50/s limit with two replicas,
// after converging: with no rate configured and the default 15s recovery,
// 45-48 calls/s admitted and 0-0.5% refused; configured for 100/s with a
// 2s recovery, 47-50 calls/s and 2-3% refused. Without a rate configured
// the first cut needs a measured rate (a quarter second of calls); until
// then a 429 only pauses (with Retry-After) or retries its job.
//
// # Concurrency
//
// With the fleet scope, a provider's Concurrency is divided like the rate:
// C/N slots each, the remainder to the first replicas in id order, at
// least one each (so N > C holds N). The live reserve is divided the same
// way, so some replicas may have none: their live lane then shares their
// slots with bulk, and live jobs go mostly to the replicas with a reserve. On a join the newcomer takes its share
// at once while the others' extra calls finish: at most C/(N+1) over the
// cap for at most one call's duration.
//
// # Daily quota
//
// The calls of a UTC day are counted fleet-wide in the counter stream
// QUOTA (ADR-49), subject quota.<provider>.<YYYYMMDD>. A replica reserves
// tokens in chunks (about two seconds of calls, at most a tenth of its
// share of the quota) with one increment that returns the new total, and
// undoes at once what went past the quota. Every call holds a token
// reserved before its job was fetched, so the fleet never calls more than
// the quota in a day. What replicas hold unused (at most a chunk each) is
// handed back when they stop, and lost (counted, never called) when they
// die. Tokens reserved in the last seconds of a day and used after
// midnight count on the day before. When the quota is spent the lanes stop
// fetching until the next UTC day, asking again every 10 seconds in case
// other replicas handed tokens back.
//
// # Circuit breaker
//
// A provider that is down gets no calls from any replica. Each replica
// counts its own calls' outcomes over a sliding window: no answer, a
// timeout, a 408 or a 5xx is a failure; a 429 counts for nothing (the
// rate limit and pauses deal with it); any other answer, 4xx included,
// shows the provider up. When the failures reach FailureRate of at least
// MinCalls calls in the window, or Consecutive in a row, that replica
// opens the breaker at once and writes breaker.<provider> in LIMITS; the
// others watch the bucket and follow within milliseconds (10 ms measured
// on loopback between three replicas). So the fleet opens on what any one
// replica sees; the window is not summed across replicas, which costs
// nothing per call, and the replicas see the same provider through the
// same consumer, so their views agree.
//
// While it is open the provider's lanes fetch nothing: its jobs wait in
// the stream and spend no attempt. Jobs already fetched and not yet
// started wait in Wait, as under a pause, keeping their messages alive;
// they are not naked, because a nak counts a delivery, and the worker
// counts attempts by deliveries. Calls in flight when it opens finish; a
// failure while it is open (such a call, or a probe) is the outage's, not
// an attempt: its job waits in the worker the same way (HoldForBreaker),
// its last attempt included, so no job is dead-lettered because of an
// outage. Only the failures before it opened spend attempts. Other
// providers are untouched: each has its own breaker, lanes and slots.
//
// When the open period ends, every replica tries to become the prober
// with a compare-and-set on the key's revision; one wins, and the others
// see it as half_open with the winner's name. The prober lets Probes calls
// through (jobs it holds, or fetches for the purpose; a fetch that finds
// nothing hands its probes back); the others keep holding. The first probe to finish decides: a success closes the
// breaker for the fleet, a failure opens it again for twice as long
// (OpenFor·2^(opens-1), at most MaxOpenFor). If the prober says nothing
// within its call timeout plus OpenFor (it died), another takes over the
// same way. Every transition is logged by the replica that made it and by
// those that follow it, reported in Snapshot, and shown by switchyard
// status from the key.
//
// # Retry budget
//
// Retries of a provider are capped at a share of its recent successes:
// each replica allows at most Ratio·S + max(1, MinPerSecond·W) retries in
// any window W in which S of its calls succeeded, so the fleet allows at
// most Ratio·S_fleet + N·MinPerSecond·W (the ratio holds for the fleet,
// the floor grows with the replicas N). A retry is counted when it is
// decided. A failure over the budget is not an attempt: its job keeps its
// slot and waits in the worker (its backoff, then for room in the budget,
// keeping its message alive), then calls again under the same attempt
// number, with no result published for the failure; a nak would count a
// delivery and so spend an attempt. As the held jobs keep their slots, a
// provider failing faster than its budget allows soon stops fetching new
// jobs. Together with the breaker: an outage opens the breaker within a
// few calls, so only the calls in flight then, and the probes, fail.
//
// # For status
//
// Worker.Limits (Limiter.Snapshot) reports a replica's view of each
// provider; every heartbeat carries the same figures (see Heartbeat), so
// ReadStatus can sum them for the whole fleet from any process.
package limit
