package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// orderBackend is a Backend whose GetOrder answers with its name; the
// Handle tests need nothing else from it.
type orderBackend struct {
	Backend
	name string
}

func (b orderBackend) GetOrder(context.Context, OrderKey) (*Order, error) {
	return &Order{Status: b.name}, nil
}

// opener counts opens and releases; gate, if set, holds every open until
// it is closed, and fail makes the next opens fail.
type opener struct {
	opens, releases atomic.Int32
	gate            chan struct{}
	fail            atomic.Bool
}

var errOpen = errors.New("cannot open")

func (o *opener) handle() Handle {
	return NewHandle(func() (Backend, error) {
		o.opens.Add(1)
		if o.gate != nil {
			<-o.gate
		}
		if o.fail.Load() {
			return nil, errOpen
		}
		return orderBackend{name: "open"}, nil
	}, func() error {
		o.releases.Add(1)
		return nil
	})
}

func getOrder(ctx context.Context, h Handle) error {
	o, err := h.GetOrder(ctx, OrderKey{})
	if err == nil && (o == nil || o.Status != "open") {
		return errors.New("the Handle did not forward to the opened Backend")
	}
	return err
}

func TestHandleZero(t *testing.T) {
	var h Handle
	if err := getOrder(context.Background(), h); !errors.Is(err, ErrNotProvisioned) {
		t.Errorf("GetOrder on the zero Handle: %v, want ErrNotProvisioned", err)
	}
	if err := h.Start(); !errors.Is(err, ErrNotProvisioned) {
		t.Errorf("Start on the zero Handle: %v, want ErrNotProvisioned", err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("Close on the zero Handle: %v", err)
	}
}

// TestHandleOpensOnce: nothing is opened until needed, and then once,
// whether Start or an operation comes first, and however many ask at once.
func TestHandleOpensOnce(t *testing.T) {
	var o opener
	h := o.handle()
	if n := o.opens.Load(); n != 0 {
		t.Fatalf("NewHandle opened %d times", n)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := getOrder(context.Background(), h); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	if n := o.opens.Load(); n != 1 {
		t.Fatalf("opened %d times, want 1", n)
	}
	// Copies share the Backend.
	c := h
	if err := getOrder(context.Background(), c); err != nil || o.opens.Load() != 1 {
		t.Fatalf("a copy of the Handle: %v, %d opens", err, o.opens.Load())
	}
}

// TestHandleWaitHonoursContext: an operation waiting for a slow open gives
// up when its context ends; the open goes on and serves the next caller.
func TestHandleWaitHonoursContext(t *testing.T) {
	o := opener{gate: make(chan struct{})}
	h := o.handle()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := getOrder(ctx, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetOrder during a slow open: %v, want the context's deadline", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("GetOrder returned %v after its 50ms deadline", took)
	}
	if err := h.LockOrder(ctx, OrderKey{}, "t", time.Minute); !errors.Is(err, ErrLockTimeout) {
		t.Errorf("LockOrder during a slow open with an ended context: %v, want ErrLockTimeout", err)
	}
	close(o.gate)
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	if n := o.opens.Load(); n != 1 {
		t.Fatalf("opened %d times, want 1", n)
	}
}

// TestHandleRetriesAFailedOpen: Start reports the open's error; the next
// operation tries again (the file may have been unlocked meanwhile).
func TestHandleRetriesAFailedOpen(t *testing.T) {
	var o opener
	o.fail.Store(true)
	h := o.handle()
	if err := h.Start(); !errors.Is(err, errOpen) {
		t.Fatalf("Start: %v, want the open's error", err)
	}
	if err := getOrder(context.Background(), h); !errors.Is(err, errOpen) {
		t.Fatalf("GetOrder: %v, want the open's error", err)
	}
	o.fail.Store(false)
	if err := getOrder(context.Background(), h); err != nil {
		t.Fatalf("GetOrder once the open works: %v", err)
	}
	if n := o.opens.Load(); n != 3 {
		t.Errorf("opened %d times, want 3", n)
	}
	if err := h.Close(); err != nil || o.releases.Load() != 1 {
		t.Errorf("Close: %v, %d releases; want one, for the one open that worked", err, o.releases.Load())
	}
}

// TestHandleClose: Close gives back what was opened, once; after it
// operations still reach what was opened (requests draining from an
// unloaded config) but nothing is opened again; a Handle closed before it
// opened answers ErrClosed, and an open still under way when Close comes
// gives back what it opened.
func TestHandleClose(t *testing.T) {
	var never opener
	h := never.handle()
	if err := h.Close(); err != nil || never.releases.Load() != 0 {
		t.Fatalf("Close of a Handle never opened: %v, %d releases", err, never.releases.Load())
	}

	var o opener
	h = o.handle()
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := o.releases.Load(); n != 1 {
		t.Fatalf("%d releases, want 1", n)
	}
	if err := getOrder(context.Background(), h); err != nil {
		t.Errorf("GetOrder after Close (a draining request): %v, want the opened Backend's answer", err)
	}
	if n := o.opens.Load(); n != 1 {
		t.Errorf("opened %d times, want 1", n)
	}
	closedEarly := never.handle()
	_ = closedEarly.Close()
	if err := getOrder(context.Background(), closedEarly); !errors.Is(err, ErrClosed) {
		t.Errorf("GetOrder on a Handle closed before it opened: %v, want ErrClosed", err)
	}
	if err := closedEarly.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start on a Handle closed before it opened: %v, want ErrClosed", err)
	}
	if n := never.opens.Load(); n != 0 {
		t.Errorf("a Handle closed before it opened opened %d times", n)
	}

	slow := opener{gate: make(chan struct{})}
	h = slow.handle()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_ = getOrder(ctx, h) // starts the open, gives up waiting
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	close(slow.gate)
	deadline := time.Now().Add(5 * time.Second)
	for slow.releases.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("an open that ended after Close did not give back what it opened")
		}
		time.Sleep(time.Millisecond)
	}
	if err := getOrder(context.Background(), h); !errors.Is(err, ErrClosed) {
		t.Errorf("GetOrder after Close: %v, want ErrClosed", err)
	}
}
