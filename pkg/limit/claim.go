package limit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrReplicaInUse is returned by Fleet.Start when a running replica
// already heartbeats under the same replica id. Two replicas with one id
// would count as one member, each taking the whole share of every
// provider's limits: the fleet would call twice as fast as allowed.
var ErrReplicaInUse = errors.New("limit: replica id in use by a running replica")

// claimPoll is how often claim looks at a heartbeat it found, waiting to
// learn whether its owner is alive.
const claimPoll = 200 * time.Millisecond

// claim publishes this replica's first heartbeat only if no live
// heartbeat holds its key, with the key's last sequence as a
// precondition, so two replicas starting at once with one id cannot both
// win. A heartbeat found may be the last one of a process that died (a
// pod restarted under its own name): claim waits for it to expire, up to
// the TTL and a second, and gives up with ErrReplicaInUse as soon as the
// key is written again, which only a live owner does.
func (f *Fleet) claim(ctx context.Context) error {
	subject := "$KV." + Bucket + "." + memberPrefix + f.key
	stream, err := f.js.Stream(ctx, "KV_"+Bucket)
	if err != nil {
		return fmt.Errorf("limit: open bucket stream: %w", err)
	}
	deadline := time.Now().Add(f.cfg.TTL + time.Second)
	var found uint64 // the live heartbeat first seen, if any
	for {
		seq, live, err := lastOnSubject(ctx, stream, subject)
		if err != nil {
			return fmt.Errorf("limit: read member key: %w", err)
		}
		switch {
		case live && found != 0 && seq != found:
			return fmt.Errorf("%w: %q heartbeats in bucket %s; give each replica its own worker.id", ErrReplicaInUse, f.cfg.Replica, Bucket)
		case live && time.Now().Before(deadline):
			if found == 0 {
				found = seq
				f.logger.Info("a heartbeat holds this replica id; waiting to see whether its owner is alive", "replica", f.cfg.Replica, "ttl", f.cfg.TTL)
			}
			select {
			case <-time.After(claimPoll):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// Free, or a heartbeat that outlived its TTL without being renewed.
		err = f.beatWith(ctx, jetstream.WithExpectLastSequencePerSubject(seq))
		if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok &&
			(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return fmt.Errorf("%w: %q was claimed by another replica starting at the same time", ErrReplicaInUse, f.cfg.Replica)
		}
		return err
	}
}

// lastOnSubject returns the sequence of the last message on subject (0 if
// none) and whether it is a live value rather than a delete, a purge or a
// marker left by an expired TTL.
func lastOnSubject(ctx context.Context, s jetstream.Stream, subject string) (uint64, bool, error) {
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	h := nats.Header(m.Header)
	live := h.Get("KV-Operation") == "" && h.Get("Nats-Marker-Reason") == ""
	return m.Sequence, live, nil
}
