package mockapi

import (
	"fmt"
	"sync"
	"testing"
)

// TestKeySet counts keys from many goroutines, every key twice, and checks
// that they spread over the shards.
func TestKeySet(t *testing.T) {
	t.Parallel()
	const n, goroutines = 20000, 8
	ks := newKeySet()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			// Goroutine g and g+goroutines/2 share keys: each is sent twice.
			for i := g % (goroutines / 2); i < n; i += goroutines / 2 {
				ks.add(fmt.Sprint("key-", i))
			}
		})
	}
	wg.Wait()
	if keys, dups := ks.counts(); keys != n || dups != n {
		t.Errorf("counts %d keys, %d duplicates; want %d and %d", keys, dups, n, n)
	}
	if got := ks.calls("key-7"); got != 2 {
		t.Errorf("calls(key-7) = %d, want 2", got)
	}
	for i := range ks.shards {
		if k := ks.shards[i].keys.Load(); k < n/keyShards/2 {
			t.Errorf("shard %d holds %d keys of %d: the hash does not spread them", i, k, n)
		}
	}
	ks.reset()
	if keys, dups := ks.counts(); keys != 0 || dups != 0 || ks.calls("key-7") != 0 {
		t.Errorf("after reset: %d keys, %d duplicates, calls(key-7) = %d", keys, dups, ks.calls("key-7"))
	}
}
