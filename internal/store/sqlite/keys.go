package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

func orgRes(id string) string          { return "org " + id }
func keyRes(orgID, name string) string { return "key " + name + " in org " + orgID }

// CreateOrg stores org, its active root key wrapping, its first data key
// and ev in one transaction. It returns Conflict if the org exists, and
// Invalid if org.MasterKey has a version (the org records the unversioned
// key; each wrapping records its version), if root is not active, or if
// root, first or ev name another org.
func (s *Store) CreateOrg(ctx context.Context, org keys.Org, root keys.RootKeyWrapping, first keys.DataKey, ev audit.Event) error {
	const op = "create org"
	if org.ID == "" {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "id", Reason: "org ID is empty"}
	}
	if org.MasterKey.Version != "" {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "master_key", Reason: "the org's master key is stored unversioned"}
	}
	if root.OrgID != "" && root.OrgID != org.ID {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "root.org_id", Reason: fmt.Sprintf("root key wrapping of org %s given for org %s", root.OrgID, org.ID)}
	}
	if root.State != "" && root.State != keys.WrappingActive {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "root.state", Reason: fmt.Sprintf("the first root key wrapping must be active, not %s", root.State)}
	}
	if err := checkDataKey(op, org.ID, first); err != nil {
		return err
	}
	ev, err := eventFor(op, org.ID, ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at, master_provider, master_key_id) VALUES (?, ?, ?, ?, ?)`,
			org.ID, org.Name, timeArg(org.CreatedAt), org.MasterKey.Provider, org.MasterKey.ID)
		if err != nil {
			return classify(ctx, op, orgRes(org.ID), err)
		}
		k := root.Wrapped.Key
		_, err = tx.ExecContext(ctx, `INSERT INTO root_keys (org_id, provider, key_id, key_version, ciphertext, state, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			org.ID, k.Provider, k.ID, k.Version, nonNil(root.Wrapped.Ciphertext), string(keys.WrappingActive), timeArg(root.CreatedAt))
		if err != nil {
			return classify(ctx, op, "active root key of org "+org.ID, err)
		}
		if err := insertDataKey(ctx, tx, op, org.ID, first); err != nil {
			return err
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// nonNil returns b, or an empty slice for nil: the blob columns are NOT
// NULL, and an empty wrapping is stored as an empty blob.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// checkDataKey checks that k belongs to orgID and that its versions run
// from 1 to k.LatestVersion.
func checkDataKey(op, orgID string, k keys.DataKey) error {
	invalid := func(field, format string, args ...any) error {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case k.OrgID != "" && k.OrgID != orgID:
		return invalid("key.org_id", "data key of org %s given for org %s", k.OrgID, orgID)
	case k.Name == "":
		return invalid("key.name", "data key name is empty")
	case len(k.Versions) == 0:
		return invalid("key.versions", "data key %s has no versions", k.Name)
	case int(k.LatestVersion) != len(k.Versions):
		return invalid("key.latest_version", "data key %s has %d versions but latest version %d", k.Name, len(k.Versions), k.LatestVersion)
	}
	for i, v := range k.Versions {
		if int(v.Version) != i+1 {
			return invalid("key.versions", "data key %s: versions must run from 1 without gaps, found %d at position %d", k.Name, v.Version, i+1)
		}
	}
	return nil
}

func insertDataKey(ctx context.Context, tx *sql.Tx, op, orgID string, k keys.DataKey) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO data_keys (org_id, name, created_at, latest_version, min_decryption_version) VALUES (?, ?, ?, ?, ?)`,
		orgID, k.Name, timeArg(k.CreatedAt), k.LatestVersion, k.MinDecryptionVersion)
	if err != nil {
		return classify(ctx, op, keyRes(orgID, k.Name), err)
	}
	for _, v := range k.Versions {
		if err := insertVersion(ctx, tx, op, orgID, k.Name, v); err != nil {
			return err
		}
	}
	return nil
}

func insertVersion(ctx context.Context, tx *sql.Tx, op, orgID, name string, v keys.DataKeyVersion) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO data_key_versions (org_id, name, version, created_at, wrapped) VALUES (?, ?, ?, ?, ?)`,
		orgID, name, v.Version, timeArg(v.CreatedAt), nonNil(v.Wrapped))
	return classify(ctx, op, fmt.Sprintf("version %d of key %s in org %s", v.Version, name, orgID), err)
}

// GetOrg returns the org, or NotFound.
func (s *Store) GetOrg(ctx context.Context, id string) (keys.Org, error) {
	const op = "get org"
	o := keys.Org{ID: id}
	err := s.stmts.getOrg.QueryRowContext(ctx, id).
		Scan(&o.Name, scanTime(&o.CreatedAt), &o.MasterKey.Provider, &o.MasterKey.ID)
	if err != nil {
		return keys.Org{}, classify(ctx, op, orgRes(id), err)
	}
	return o, nil
}

// ListOrgs returns orgs ordered by ID, after opts.After, at most opts.Limit
// (0 means 100; above 1000 means 1000). A negative limit is Invalid.
func (s *Store) ListOrgs(ctx context.Context, opts keys.ListOptions) ([]keys.Org, error) {
	const op = "list orgs"
	limit := opts.Limit
	switch {
	case limit < 0:
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "limit", Reason: "limit must not be negative"}
	case limit == 0:
		limit = 100
	case limit > 1000:
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, created_at, master_provider, master_key_id FROM orgs WHERE id > ? ORDER BY id LIMIT ?`,
		opts.After, limit)
	if err != nil {
		return nil, classify(ctx, op, "orgs", err)
	}
	orgs, err := collect(rows, func(rows *sql.Rows) (keys.Org, error) {
		var o keys.Org
		return o, rows.Scan(&o.ID, &o.Name, scanTime(&o.CreatedAt), &o.MasterKey.Provider, &o.MasterKey.ID)
	})
	return orgs, classify(ctx, op, "orgs", err)
}

// orgMissing returns NotFound for the org if it does not exist, and nil if
// it does. Methods call it after finding nothing, to say which object is
// missing.
func orgMissing(ctx context.Context, q querier, op, orgID string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM orgs WHERE id = ?`, orgID).Scan(&one)
	return classify(ctx, op, orgRes(orgID), err)
}

// keyMissing returns NotFound for the org, or else for the key.
func keyMissing(ctx context.Context, q querier, op, orgID, name string) error {
	if err := orgMissing(ctx, q, op, orgID); err != nil {
		return err
	}
	return &fault.Error{Kind: fault.NotFound, Op: op, Resource: keyRes(orgID, name)}
}

// RootKeys returns the org's root key wrappings, the active one first, then
// the others by ID. NotFound if the org does not exist.
func (s *Store) RootKeys(ctx context.Context, orgID string) ([]keys.RootKeyWrapping, error) {
	const op = "get root keys"
	rows, err := s.stmts.rootKeys.QueryContext(ctx, orgID)
	if err != nil {
		return nil, classify(ctx, op, orgRes(orgID), err)
	}
	ws, err := collect(rows, func(rows *sql.Rows) (keys.RootKeyWrapping, error) {
		w := keys.RootKeyWrapping{OrgID: orgID}
		k := &w.Wrapped.Key
		return w, rows.Scan(&w.ID, &k.Provider, &k.ID, &k.Version, &w.Wrapped.Ciphertext, &w.State, scanTime(&w.CreatedAt))
	})
	if err != nil {
		return nil, classify(ctx, op, orgRes(orgID), err)
	}
	if len(ws) == 0 {
		if err := orgMissing(ctx, s.r, op, orgID); err != nil {
			return nil, err
		}
	}
	return ws, nil
}

// RootKeysOf implements [cmk.Store]: the wrappings of orgIDs in one
// query, by org ID, each org's active one first; an org without any is
// left out.
func (s *Store) RootKeysOf(ctx context.Context, orgIDs []string) ([]keys.RootKeyWrapping, error) {
	const op = "get root keys"
	if len(orgIDs) == 0 {
		return nil, nil
	}
	ids, err := json.Marshal(orgIDs)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "root keys", Err: err}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT org_id, id, provider, key_id, key_version, ciphertext, state, created_at
		FROM root_keys WHERE org_id IN (SELECT value FROM json_each(?)) ORDER BY org_id, state = 'active' DESC, id`, string(ids))
	if err != nil {
		return nil, classify(ctx, op, "root keys", err)
	}
	ws, err := collect(rows, func(rows *sql.Rows) (keys.RootKeyWrapping, error) {
		var w keys.RootKeyWrapping
		k := &w.Wrapped.Key
		return w, rows.Scan(&w.OrgID, &w.ID, &k.Provider, &k.ID, &k.Version, &w.Wrapped.Ciphertext, &w.State, scanTime(&w.CreatedAt))
	})
	return ws, classify(ctx, op, "root keys", err)
}

// CreateDataKey stores k with its versions and ev. NotFound if the org does
// not exist, Conflict if the key does.
func (s *Store) CreateDataKey(ctx context.Context, orgID string, k keys.DataKey, ev audit.Event) error {
	const op = "create key"
	if err := checkDataKey(op, orgID, k); err != nil {
		return err
	}
	ev, err := eventFor(op, orgID, ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := orgMissing(ctx, tx, op, orgID); err != nil {
			return err
		}
		if err := insertDataKey(ctx, tx, op, orgID, k); err != nil {
			return err
		}
		_, err := s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// GetDataKey returns the key with all its versions, ascending. NotFound
// names the org if it does not exist, else the key.
func (s *Store) GetDataKey(ctx context.Context, orgID, name string) (keys.DataKey, error) {
	const op = "get key"
	rows, err := s.stmts.getDataKey.QueryContext(ctx, orgID, name)
	if err != nil {
		return keys.DataKey{}, classify(ctx, op, keyRes(orgID, name), err)
	}
	k := keys.DataKey{OrgID: orgID, Name: name}
	vs, err := collect(rows, func(rows *sql.Rows) (keys.DataKeyVersion, error) {
		var v keys.DataKeyVersion
		var version sql.NullInt64
		err := rows.Scan(scanTime(&k.CreatedAt), &k.LatestVersion, &k.MinDecryptionVersion, &version, scanTime(&v.CreatedAt), &v.Wrapped)
		v.Version = uint32(version.Int64)
		return v, err
	})
	if err != nil {
		return keys.DataKey{}, classify(ctx, op, keyRes(orgID, name), err)
	}
	if len(vs) == 0 {
		return keys.DataKey{}, keyMissing(ctx, s.r, op, orgID, name)
	}
	if vs[0].Version != 0 { // a key without versions has one row of NULLs
		k.Versions = vs
	}
	return k, nil
}

// ListDataKeys returns the org's keys ordered by name, each with its
// versions' numbers and times but not their material (Wrapped is nil).
// NotFound if the org does not exist.
func (s *Store) ListDataKeys(ctx context.Context, orgID string) ([]keys.DataKey, error) {
	const op = "list keys"
	rows, err := s.r.QueryContext(ctx, `SELECT k.name, k.created_at, k.latest_version, k.min_decryption_version, v.version, v.created_at
		FROM data_keys k LEFT JOIN data_key_versions v ON v.org_id = k.org_id AND v.name = k.name
		WHERE k.org_id = ? ORDER BY k.name, v.version`, orgID)
	if err != nil {
		return nil, classify(ctx, op, orgRes(orgID), err)
	}
	type row struct {
		k  keys.DataKey
		v  keys.DataKeyVersion
		ok bool
	}
	rs, err := collect(rows, func(rows *sql.Rows) (row, error) {
		r := row{k: keys.DataKey{OrgID: orgID}}
		var version sql.NullInt64
		err := rows.Scan(&r.k.Name, scanTime(&r.k.CreatedAt), &r.k.LatestVersion, &r.k.MinDecryptionVersion, &version, scanTime(&r.v.CreatedAt))
		r.v.Version, r.ok = uint32(version.Int64), version.Valid
		return r, err
	})
	if err != nil {
		return nil, classify(ctx, op, orgRes(orgID), err)
	}
	if len(rs) == 0 {
		if err := orgMissing(ctx, s.r, op, orgID); err != nil {
			return nil, err
		}
		return nil, nil
	}
	var ks []keys.DataKey
	for _, r := range rs {
		if len(ks) == 0 || ks[len(ks)-1].Name != r.k.Name {
			ks = append(ks, r.k)
		}
		if r.ok {
			last := &ks[len(ks)-1]
			last.Versions = append(last.Versions, r.v)
		}
	}
	return ks, nil
}

// AddDataKeyVersion adds v and makes it the latest version, with ev, in one
// transaction. v.Version must be the key's latest version + 1: otherwise
// (another rotation won the race) it returns Conflict. NotFound if the org
// or key does not exist.
func (s *Store) AddDataKeyVersion(ctx context.Context, orgID, name string, v keys.DataKeyVersion, ev audit.Event) error {
	const op = "add key version"
	if v.Version < 2 {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "version", Reason: fmt.Sprintf("a new key version must be 2 or more, not %d", v.Version)}
	}
	ev, err := eventFor(op, orgID, ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		// Compare and set: the update matches only if the key is still at
		// the version the caller read.
		res, err := tx.ExecContext(ctx, `UPDATE data_keys SET latest_version = ? WHERE org_id = ? AND name = ? AND latest_version = ?`,
			v.Version, orgID, name, v.Version-1)
		if err != nil {
			return classify(ctx, op, keyRes(orgID, name), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return classify(ctx, op, keyRes(orgID, name), err)
		}
		if n == 0 {
			var latest uint32
			err := tx.QueryRowContext(ctx, `SELECT latest_version FROM data_keys WHERE org_id = ? AND name = ?`, orgID, name).Scan(&latest)
			if errors.Is(err, sql.ErrNoRows) {
				return keyMissing(ctx, tx, op, orgID, name)
			}
			if err != nil {
				return classify(ctx, op, keyRes(orgID, name), err)
			}
			return &fault.Error{Kind: fault.Conflict, Op: op, Resource: keyRes(orgID, name),
				Reason: fmt.Sprintf("key %s in org %s is at version %d, so version %d cannot be added: another rotation came first; retry", name, orgID, latest, v.Version)}
		}
		if err := insertVersion(ctx, tx, op, orgID, name, v); err != nil {
			return err
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// SetMinDecryptionVersion sets the key's minimum decryption version, with
// ev. Invalid unless 1 <= min <= the latest version; NotFound if the org or
// key does not exist.
func (s *Store) SetMinDecryptionVersion(ctx context.Context, orgID, name string, min uint32, ev audit.Event) error {
	const op = "set min decryption version"
	ev, err := eventFor(op, orgID, ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		var latest uint32
		err := tx.QueryRowContext(ctx, `SELECT latest_version FROM data_keys WHERE org_id = ? AND name = ?`, orgID, name).Scan(&latest)
		if errors.Is(err, sql.ErrNoRows) {
			return keyMissing(ctx, tx, op, orgID, name)
		}
		if err != nil {
			return classify(ctx, op, keyRes(orgID, name), err)
		}
		if min < 1 || min > latest {
			return &fault.Error{Kind: fault.Invalid, Op: op, Field: "min_decryption_version",
				Reason: fmt.Sprintf("min decryption version must be between 1 and the latest version %d, not %d", latest, min)}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE data_keys SET min_decryption_version = ? WHERE org_id = ? AND name = ?`, min, orgID, name); err != nil {
			return classify(ctx, op, keyRes(orgID, name), err)
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}
