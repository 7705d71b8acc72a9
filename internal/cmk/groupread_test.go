package cmk

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// readStore is the part of a Store the group reads use: the wrappings and
// records of orgs a and b; c has wrappings but no record; every other org
// does not exist.
type readStore struct {
	Store
	fail                   error         // returned by the group reads when set
	hold                   chan struct{} // the first group read of each kind waits for it to close
	heldRoots, heldRecords atomic.Bool
	heldN                  atomic.Int64 // the calls in the group read waiting for hold
	groups                 atomic.Int64
	singleOrgs             sync.Mutex
	single                 []string // orgs read alone
	wrappings              map[string][]keys.RootKeyWrapping
	records                map[string]Record
}

func (f *readStore) RootKeysOf(ctx context.Context, orgIDs []string) ([]keys.RootKeyWrapping, error) {
	f.groups.Add(1)
	if f.heldRoots.CompareAndSwap(false, true) {
		f.heldN.Store(int64(len(orgIDs)))
		<-f.hold
	}
	if f.fail != nil {
		return nil, f.fail
	}
	ids := slices.Clone(orgIDs)
	slices.Sort(ids)
	var out []keys.RootKeyWrapping
	for _, id := range slices.Compact(ids) {
		out = append(out, f.wrappings[id]...)
	}
	return out, nil
}

func (f *readStore) RootKeys(ctx context.Context, orgID string) ([]keys.RootKeyWrapping, error) {
	f.singleOrgs.Lock()
	f.single = append(f.single, orgID)
	f.singleOrgs.Unlock()
	if ws, ok := f.wrappings[orgID]; ok {
		return ws, nil
	}
	return nil, &fault.Error{Kind: fault.NotFound, Op: "get root keys", Resource: "org " + orgID}
}

func (f *readStore) GetCMKs(ctx context.Context, orgIDs []string) ([]Record, error) {
	f.groups.Add(1)
	if f.heldRecords.CompareAndSwap(false, true) {
		f.heldN.Store(int64(len(orgIDs)))
		<-f.hold
	}
	if f.fail != nil {
		return nil, f.fail
	}
	var out []Record
	for _, id := range orgIDs {
		if r, ok := f.records[id]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *readStore) GetCMK(ctx context.Context, orgID string) (Record, error) {
	f.singleOrgs.Lock()
	f.single = append(f.single, orgID)
	f.singleOrgs.Unlock()
	if r, ok := f.records[orgID]; ok {
		return r, nil
	}
	return Record{}, &fault.Error{Kind: fault.NotFound, Op: "get CMK record", Resource: "org " + orgID}
}

// TestGroupReads: a job's root keys and record read with other jobs' are
// each its own org's, in RootKeys' order; an org the group read finds
// nothing for gets the single read's answer; a failed group read fails
// each of its callers.
func TestGroupReads(t *testing.T) {
	w := func(org string, id int64, state keys.WrappingState) keys.RootKeyWrapping {
		return keys.RootKeyWrapping{ID: id, OrgID: org, State: state, Wrapped: masterkey.Wrapped{Ciphertext: []byte(org), Key: masterkey.Ref{Provider: "azurekv", ID: "k", Version: "v"}}}
	}
	st := &readStore{
		wrappings: map[string][]keys.RootKeyWrapping{
			"a": {w("a", 1, keys.WrappingActive), w("a", 4, keys.WrappingPending)},
			"b": {w("b", 2, keys.WrappingActive)},
			"c": {w("c", 3, keys.WrappingActive)},
		},
		records: map[string]Record{"a": {OrgID: "a", State: StateRotating, Revision: 3}, "b": {OrgID: "b", State: StateRotating, Revision: 5}},
	}
	s := &Service{st: st}
	orgs := []string{"a", "b", "c", "ghost", "a", "b"}
	const rounds = 20
	// phase runs read for every org of every round at once: the first
	// group read waits until all the other calls have joined the next
	// group, so that group holds many orgs.
	phase := func(b *batcher[string, []keys.RootKeyWrapping], r *batcher[string, recordRead], read func(org string)) {
		st.hold = make(chan struct{})
		st.heldN.Store(0)
		var wg sync.WaitGroup
		for range rounds {
			for _, org := range orgs {
				wg.Go(func() { read(org) })
			}
		}
		deadline := time.Now().Add(time.Minute)
		for {
			n := 0
			if b != nil {
				b.mu.Lock()
				if b.next != nil {
					n = len(b.next.in)
				}
				b.mu.Unlock()
			} else {
				r.mu.Lock()
				if r.next != nil {
					n = len(r.next.in)
				}
				r.mu.Unlock()
			}
			held := int(st.heldN.Load())
			if held > 0 && held+n == rounds*len(orgs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d calls in the held group read and %d in the next of %d after a minute", held, n, rounds*len(orgs))
			}
			time.Sleep(time.Millisecond)
		}
		close(st.hold)
		wg.Wait()
	}
	phase(&s.rootReads, nil, func(org string) {
		ws, err := s.jobRootKeys(t.Context(), org)
		want, ok := st.wrappings[org]
		switch {
		case !ok && fault.KindOf(err) != fault.NotFound:
			t.Errorf("jobRootKeys(%s) = %v, %v; want NotFound", org, ws, err)
		case ok && (err != nil || !slices.EqualFunc(ws, want, func(x, y keys.RootKeyWrapping) bool { return x.ID == y.ID && x.OrgID == y.OrgID })):
			t.Errorf("jobRootKeys(%s) = %v, %v; want %v", org, ws, err, want)
		}
	})
	phase(nil, &s.recReads, func(org string) {
		rec, err := s.jobRecord(t.Context(), org)
		want, ok := st.records[org]
		if !ok {
			want = Record{OrgID: org, State: StatePlatform}
		}
		if err != nil || rec.OrgID != want.OrgID || rec.State != want.State || rec.Revision != want.Revision {
			t.Errorf("jobRecord(%s) = %+v, %v; want %+v", org, rec, err, want)
		}
	})
	if got := st.groups.Load(); got != 4 {
		t.Errorf("%d group reads for %d calls, want 4 (per kind: the first caller's, then all the others')", got, 2*rounds*len(orgs))
	}
	for _, org := range st.single {
		if org == "a" || org == "b" {
			t.Errorf("org %s was read alone, though the group read found it", org)
		}
	}
	st.fail = &fault.Error{Kind: fault.Unavailable, Op: "get root keys", Err: errors.New("connection refused")}
	if _, err := s.jobRootKeys(t.Context(), "a"); fault.KindOf(err) != fault.Unavailable {
		t.Errorf("jobRootKeys(a) with the group read failing = %v, want Unavailable", err)
	}
	if _, err := s.jobRecord(t.Context(), "a"); fault.KindOf(err) != fault.Unavailable {
		t.Errorf("jobRecord(a) with the group read failing = %v, want Unavailable", err)
	}
}
