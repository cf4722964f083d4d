package bboltstore

import (
	"bytes"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// sweepLoop deletes expired replay records until Close. The first sweep
// runs at once, so that the records that expired while no process had the
// file open are cleared soon after it is opened, not an interval later.
func (db *Backend) sweepLoop(interval time.Duration) {
	defer db.sweeping.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		removed, err := db.sweep()
		switch {
		case err != nil:
			select {
			case <-db.stop:
				return // Close raced the sweep; its error means nothing
			default:
			}
			db.log.Error("sweeping expired replay records", zap.String("path", db.path), zap.Error(err))
		case removed > 0:
			db.log.Debug("swept expired replay records", zap.String("path", db.path), zap.Int("removed", removed))
		}
		db.logOutboxSweep(db.sweepOutbox(time.Now()))
		select {
		case <-db.stop:
			return
		case <-t.C:
		}
	}
}

// sweep deletes the replay records that are no longer live, and drops
// stranded order locks and the in-memory claims whose lease ended (their
// owners never released them, or were taken over by nobody). In the file
// it works in chunks: a read transaction finds up to
// sweepChunk dead keys, a short write transaction deletes those still
// dead, and so on, so that request traffic is never held up for a whole
// scan. It returns the number of records deleted.
func (db *Backend) sweep() (int, error) {
	now := time.Now()
	db.locks.sweep(now)
	db.claims.sweep(now)
	removed := 0
	var after []byte // last key examined
	for {
		select {
		case <-db.stop:
			return removed, nil
		default:
		}
		var dead [][]byte
		var more bool
		err := db.bolt.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketRequests).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			now := time.Now()
			for n := 0; k != nil; k, v = c.Next() {
				if n == sweepChunk {
					more = true
					break
				}
				n++
				after = append(after[:0], k...)
				if deadRecord(v, now) {
					dead = append(dead, bytes.Clone(k))
				}
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		if len(dead) > 0 {
			// Plain Update, not Batch: a sweep must not make a batch of
			// requests fail together if it fails.
			deleted := 0
			err = db.bolt.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketRequests)
				now := time.Now()
				for _, k := range dead {
					// Checked again: the key may have been finished
					// anew since the read.
					if v := b.Get(k); v != nil && deadRecord(v, now) {
						if err := b.Delete(k); err != nil {
							return err
						}
						deleted++
					}
				}
				return nil
			})
			if err != nil {
				return removed, err
			}
			removed += deleted
		}
		if !more {
			return removed, nil
		}
	}
}

// deadRecord reports whether a stored record no longer counts. Corrupt records
// are left alone: deleting them would hide the corruption.
func deadRecord(v []byte, now time.Time) bool {
	r, err := parseRecord(v)
	return err == nil && !r.live(now)
}
