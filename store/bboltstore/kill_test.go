package bboltstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// commitKillChildEnv names the file a child process of
// TestCommitsKilledProcess writes to.
const commitKillChildEnv = "ORDERSYNC_COMMIT_KILL_CHILD"

// TestCommitsKilledProcess kills a process (SIGKILL) while many writers
// commit first-time requests through shared transactions, and opens its
// file: every commit the process was told had succeeded is there, order
// and replay record, whatever transaction it shared; and the file opens
// without its freelist, which is never written.
func TestCommitsKilledProcess(t *testing.T) {
	if path := os.Getenv(commitKillChildEnv); path != "" {
		commitKillChild(path)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	var acked []string
	path := killedChild(t, "TestCommitsKilledProcess", commitKillChildEnv, func(line string) bool {
		id, ok := strings.CutPrefix(line, "committed ")
		if ok {
			acked = append(acked, id)
		}
		return len(acked) >= 300
	})

	db, err := Open(Options{Path: path, SweepInterval: -1, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, id := range acked {
		o, err := db.GetOrder(ctx, store.OrderKey{ClientID: "c", MerchantBizNo: id})
		if err != nil || o == nil || o.RequestID != id {
			t.Fatalf("acknowledged order %s reads back as %+v, %v", id, o, err)
		}
		rec, err := db.GetRequest(ctx, store.RequestKey{ClientID: "c", RequestID: id})
		if err != nil || rec == nil || !rec.Done || string(rec.Reply.Body) != "S "+id {
			t.Fatalf("acknowledged reply of %s reads back as %+v, %v", id, rec, err)
		}
	}
}

// commitKillChild is the child of TestCommitsKilledProcess: 16 writers
// claim and commit new orders, each printed once its commit returned,
// until the process is killed.
func commitKillChild(path string) {
	db, err := Open(Options{Path: path, SweepInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	var printed sync.Mutex
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("w%02d-%06d", w, i)
				rkey := store.RequestKey{ClientID: "c", RequestID: id}
				okey := store.OrderKey{ClientID: "c", MerchantBizNo: id}
				tok := "tok-" + id
				if res, err := db.Claim(ctx, rkey, store.HashBody([]byte(id)), tok, time.Minute); err != nil || res.Status != store.Claimed {
					fmt.Fprintln(os.Stderr, res.Status, err)
					os.Exit(2)
				}
				next := store.Order{Scenario: "s", Status: "PAID", OrderID: "o-" + id, RequestID: id, UpdatedAt: time.Now()}
				reply := store.Reply{Status: 200, Body: []byte("S " + id)}
				if err := db.CommitSuccess(ctx, okey, nil, next, rkey, tok, reply, time.Hour); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				printed.Lock()
				fmt.Println("committed", id)
				printed.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(3) // never killed
}

// killedChild runs the test named test of this binary as a child process,
// with env naming a new file for it to write, hands every line the child
// prints to ack, and kills the child (SIGKILL) the first time ack returns
// true.
// It returns the file's path once the child is dead; a child that ends
// unkilled fails the test.
func killedChild(t *testing.T, test, env string, ack func(line string) (kill bool)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "orders.db")
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	killed, acks := false, 0
	for lines.Scan() {
		acks++
		// Lines after the kill still count: the child printed them
		// before it died.
		if ack(lines.Text()) && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the child ended after %d lines without being killed", acks)
	}
	return path
}
