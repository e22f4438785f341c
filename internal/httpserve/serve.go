package httpserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
)

// Serve serves hs on ln in a goroutine of its own and returns a channel
// closed once it stops. A stop other than a shutdown is logged as what
// (e.g. "gateway") having stopped serving.
func Serve(hs *http.Server, ln net.Listener, logger *slog.Logger, what string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(what+" stopped serving", "err", err)
		}
	}()
	return done
}

// Shutdown stops hs accepting requests and waits for those in flight until
// ctx ends, then closes what is left, and returns once Serve's done is
// closed. It returns ctx's error when requests had to be cut.
func Shutdown(ctx context.Context, hs *http.Server, done <-chan struct{}) error {
	err := hs.Shutdown(ctx)
	if err != nil {
		_ = hs.Close()
	}
	<-done
	return err
}
