package outboxplan

import (
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// Index names one of the outbox's indexes. Each is per client and holds
// members (requestIds, or merchantBizNos for IndexDue) with a score in
// epoch milliseconds, which backends keep sorted: bbolt as keys, Redis as
// sorted sets.
type Index uint8

const (
	// IndexState lists a client's entries of one state. Queued entries are
	// scored by QueuedAt (oldest first: the queue's age), final ones by
	// ExpiresAt, or Never while their callback is pending.
	IndexState Index = iota + 1
	// IndexCallback lists the entries whose callback is pending, scored by
	// Callback.NextAttemptAt.
	IndexCallback
	// IndexExpiry lists the final entries with no callback pending,
	// scored by ExpiresAt: what the sweeper deletes once it passed. (Redis
	// keeps it as the entry key's own expiry.)
	IndexExpiry
	// IndexDue lists the lanes that have queued entries (member:
	// merchantBizNo), scored by their head's NextAttemptAt.
	IndexDue
)

// Never is the score of what no time reaches. Scores stay within
// [0, Never], all exactly representable as float64 (Redis scores).
const Never int64 = 1<<53 - 1

// Score returns t as a score: epoch milliseconds rounded up, so that
// nothing is ever found due before its time; times before 1970 are 0.
func Score(t time.Time) int64 {
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		ms++
	}
	return min(ms, Never)
}

// Floor returns now as the highest score that is due at now: epoch
// milliseconds rounded down.
func Floor(now time.Time) int64 {
	if now.Unix() < 0 {
		return 0
	}
	return min(now.UnixMilli(), Never)
}

// IndexOp is one index change: add Member with Score, or remove it (Score
// is then the score it had, which bbolt's keys need).
type IndexOp struct {
	Index    Index
	ClientID string
	State    store.EntryState // IndexState only
	Member   string
	Score    int64
	Remove   bool
}

type place struct {
	index Index
	state store.EntryState
	score int64
}

func entryPlaces(e *store.Entry) []place {
	if e == nil {
		return nil
	}
	ps := make([]place, 0, 3)
	switch {
	case e.State == store.EntryQueued:
		ps = append(ps, place{IndexState, e.State, Score(e.QueuedAt)})
	case e.Callback.Pending:
		ps = append(ps, place{IndexState, e.State, Never})
	default:
		ps = append(ps, place{IndexState, e.State, Score(e.ExpiresAt)}, place{IndexExpiry, "", Score(e.ExpiresAt)})
	}
	if e.Callback.Pending {
		ps = append(ps, place{IndexCallback, "", Score(e.Callback.NextAttemptAt)})
	}
	return ps
}

func lanePlaces(r *store.LaneRecord) []place {
	if r == nil || len(r.Queue) == 0 {
		return nil
	}
	return []place{{IndexDue, "", Score(r.HeadDue)}}
}

// Index returns the index changes c implies, removals first.
func (c *Change) Index() []IndexOp {
	var rm, add []IndexOp
	diff := func(clientID, member string, old, new []place) {
		for _, p := range old {
			if !containsPlace(new, p) {
				rm = append(rm, IndexOp{Index: p.index, ClientID: clientID, State: p.state, Member: member, Score: p.score, Remove: true})
			}
		}
		for _, p := range new {
			if !containsPlace(old, p) {
				add = append(add, IndexOp{Index: p.index, ClientID: clientID, State: p.state, Member: member, Score: p.score})
			}
		}
	}
	for _, ec := range c.Entries {
		diff(ec.Key.ClientID, ec.Key.RequestID, entryPlaces(ec.Old), entryPlaces(ec.New))
	}
	for _, lc := range c.Lanes {
		diff(lc.Key.ClientID, lc.Key.MerchantBizNo, lanePlaces(lc.Old), lanePlaces(lc.New))
	}
	return append(rm, add...)
}

func containsPlace(ps []place, p place) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
