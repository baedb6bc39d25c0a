package oidc

import (
	"context"
	"sync"
)

// background runs the refreshes no caller waits for (a discovery document
// or JWKS past its age): one at a time, and none once closed. close
// cancels the one running and waits for it to end, so that none outlives
// its Provider (Provider.Close). The zero value is ready to use.
type background struct {
	mu      sync.Mutex
	ctx     context.Context // cancelled by close
	cancel  context.CancelFunc
	running bool
	wg      sync.WaitGroup
}

// run starts f in a goroutine, unless one is running or b is closed.
func (b *background) run(f func(ctx context.Context)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running || b.contextLocked().Err() != nil {
		return
	}
	b.running = true
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() {
			b.mu.Lock()
			b.running = false
			b.mu.Unlock()
		}()
		f(b.ctx)
	}()
}

// close stops b: the refresh running is cancelled and waited for, and
// none starts again.
func (b *background) close() {
	b.mu.Lock()
	b.contextLocked()
	b.cancel()
	b.mu.Unlock()
	b.wg.Wait()
}

// contextLocked is b's context, made at its first use: the zero value
// has none. The caller holds mu.
func (b *background) contextLocked() context.Context {
	if b.ctx == nil {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	return b.ctx
}
