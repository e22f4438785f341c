package mockapi

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// keyShards spreads the idempotency keys over this many maps, so that
// requests on different cores rarely wait for the same lock. A power of two
// makes the shard a mask of the hash.
const keyShards = 64

// keySet counts calls per idempotency key. A load test sends hundreds of
// thousands of distinct keys, so one map behind one lock would be the
// hottest lock in the process.
type keySet struct {
	seed   maphash.Seed
	shards [keyShards]keyShard
}

type keyShard struct {
	mu    sync.Mutex
	calls map[string]int
	// keys and dups are written under mu and read without it, so that a
	// stats poll costs 64 loads rather than 64 locks.
	keys, dups atomic.Int64
	// Keep neighbouring shards' locks off one cache line.
	_ [64]byte
}

func newKeySet() *keySet {
	ks := &keySet{seed: maphash.MakeSeed()}
	for i := range ks.shards {
		ks.shards[i].calls = make(map[string]int)
	}
	return ks
}

func (ks *keySet) shard(key string) *keyShard {
	return &ks.shards[maphash.String(ks.seed, key)&(keyShards-1)]
}

// add counts one call with key and returns how many there were, this one
// included.
func (ks *keySet) add(key string) int {
	sh := ks.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := sh.calls[key] + 1
	sh.calls[key] = n
	switch n {
	case 1:
		sh.keys.Add(1)
	case 2:
		sh.dups.Add(1)
	}
	return n
}

// calls reports how many calls carried key.
func (ks *keySet) calls(key string) int {
	sh := ks.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.calls[key]
}

// counts returns the distinct keys and those seen more than once.
func (ks *keySet) counts() (keys, dups int) {
	for i := range ks.shards {
		keys += int(ks.shards[i].keys.Load())
		dups += int(ks.shards[i].dups.Load())
	}
	return keys, dups
}

// reset forgets every key.
func (ks *keySet) reset() {
	for i := range ks.shards {
		sh := &ks.shards[i]
		sh.mu.Lock()
		sh.calls = make(map[string]int)
		sh.keys.Store(0)
		sh.dups.Store(0)
		sh.mu.Unlock()
	}
}
