package worker

import (
	"fmt"
	"testing"
)

// BenchmarkResultMsgID compares how a result's message id was built
// (Sprintf) with msgID, for every result a worker publishes.
func BenchmarkResultMsgID(b *testing.B) {
	const id, seq, attempt = "01J9Z3K7Q8X2M4N6P0R2T4V6W8", uint64(123456789), 3
	want := fmt.Sprintf("%s:%d:%d", id, seq, attempt)
	b.Run("Sprintf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = fmt.Sprintf("%s:%d:%d", id, seq, attempt)
		}
	})
	b.Run("msgID", func(b *testing.B) {
		if got := msgID(id, seq, "3"); got != want {
			b.Fatalf("msgID = %q, want %q", got, want)
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = msgID(id, seq, "3")
		}
	})
}

// TestPermanentNil: the common case, no error, is not permanent.
func TestPermanentNil(t *testing.T) {
	if permanent(nil) {
		t.Fatal("permanent(nil)")
	}
	if n := testing.AllocsPerRun(100, func() { _ = permanent(nil) }); n != 0 {
		t.Fatalf("permanent(nil) allocates %v times", n)
	}
}
