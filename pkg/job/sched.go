package job

import "strings"

// Subjects of the JOBS stream that hold NATS message schedules (nats-server
// 2.12+, AllowMsgSchedules). No work consumer covers them: a consumer
// whose filter covered a schedule would consume, and so delete, it.
//
//	sched.job.<provider>.<lane>.<task>.<batch>.<id>   a delayed job: fires once on jobs.<provider>.<lane>.<task>
//	sched.cron.<name>                                 a periodic schedule: fires on sched.fire.<name>
//	sched.fire.<name>                                 its firings, which workers turn into jobs
//
// A delayed job's subject names its job, so that publishing the same job
// again replaces its schedule rather than adding a second one (a schedule
// is the last message on its subject), and so that cancelling a job or a
// batch purges its schedules with one filtered purge. The provider, lane
// and task make `nats stream subjects JOBS 'sched.job.acme.>'` count the
// delayed jobs of a provider.
const (
	SchedPrefix = "sched"
	// FireFilter covers the firings of every periodic schedule.
	FireFilter = SchedPrefix + ".fire.>"
	// DelayFilter covers every delayed job.
	DelayFilter = SchedPrefix + ".job.>"
	// CronFilter covers every periodic schedule.
	CronFilter = SchedPrefix + ".cron.>"
)

// HeaderJobID carries the job id on a delayed job's schedule. The server
// drops Nats-Msg-Id when a schedule fires but keeps other headers, so the
// fired job still says whose it is before its envelope is read.
const HeaderJobID = "Switchyard-Job-Id"

// noToken stands for an absent batch in a schedule subject. It is not a
// character of any batch or job id, so it never collides with one.
const noToken = "~"

// SubjectToken turns a batch or job id into one subject token: "~" for an
// empty one, and "~" for each ".", which ids may hold but a token may not.
// No id holds "~", so the mapping is one to one.
func SubjectToken(id string) string {
	if id == "" {
		return noToken
	}
	return strings.ReplaceAll(id, ".", noToken)
}

// DelaySubject returns the subject of the schedule that holds job j, to be
// published on its lane at not_before.
func DelaySubject(lane Lane, j *Job) string {
	return SchedPrefix + ".job." + j.Provider + "." + string(lane) + "." + j.Task + "." + SubjectToken(j.Batch) + "." + SubjectToken(j.ID)
}

// DelayJobFilter covers the schedule of the delayed job with this id,
// whatever its provider, lane, task and batch.
func DelayJobFilter(id string) string {
	return SchedPrefix + ".job.*.*.*.*." + SubjectToken(id)
}

// DelayBatchFilter covers the schedules of every delayed job of batch.
func DelayBatchFilter(batch string) string {
	return SchedPrefix + ".job.*.*.*." + SubjectToken(batch) + ".*"
}

// CronSubject returns the subject of periodic schedule name (a token:
// ValidToken).
func CronSubject(name string) string { return SchedPrefix + ".cron." + name }

// FireSubject returns the subject periodic schedule name fires on.
func FireSubject(name string) string { return SchedPrefix + ".fire." + name }
