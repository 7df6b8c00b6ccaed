// Package auth is raftkv's access control: the auth file (users and tokens,
// their secrets stored as bcrypt hashes, and what each may do), the check of
// a request's credentials against it, and the permissions of the identity
// that results. docs/SECURITY.md documents the file and the rules.
//
// bcrypt makes a guess at a stolen hash expensive, which also makes every
// check expensive (tens of milliseconds). A secret that passed once is
// therefore remembered, as its SHA-256 digest, for as long as the file that
// accepted it is in force, so that a client sending the same credentials on
// every request pays for bcrypt once; and at most a few bcrypt checks run at
// a time, so that a flood of wrong passwords cannot take every core.
package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// Errors of Authenticate and Load; compare them with errors.Is.
var (
	// ErrNoCredentials: the request carries no Authorization header.
	ErrNoCredentials = errors.New("credentials required")
	// ErrBadCredentials: the user, password or token is not one the auth
	// file accepts, or the Authorization header is malformed.
	ErrBadCredentials = errors.New("invalid credentials")
	// ErrInvalidFile: the auth file cannot be used.
	ErrInvalidFile = errors.New("invalid auth file")
)

// maxFileBytes bounds the auth file: it is read whole.
const maxFileBytes = 16 << 20

// maxCached bounds the remembered secrets of one file; when full, the
// memory starts over, which costs each client one more bcrypt check.
const maxCached = 4096

// fileFormat is the auth file: a JSON object with users (HTTP Basic auth)
// and tokens (Authorization: Bearer NAME.SECRET), each by name.
type fileFormat struct {
	Users  map[string]entry `json:"users"`
	Tokens map[string]entry `json:"tokens"`
}

// entry is one user or token.
type entry struct {
	// PasswordHash (users) or TokenHash (tokens) is the bcrypt hash of
	// the secret, as `raftkv auth hash` and `raftkv auth token` print it.
	PasswordHash string `json:"password_hash,omitempty"`
	TokenHash    string `json:"token_hash,omitempty"`
	// Read and Write are key prefixes; "" is every key.
	Read  []string `json:"read,omitempty"`
	Write []string `json:"write,omitempty"`
	// Admin may do everything: every key, membership, leadership.
	Admin bool `json:"admin,omitempty"`
}

// Store holds the auth file in force and checks credentials against it. It
// is safe for concurrent use; Reload replaces the file atomically.
type Store struct {
	path string
	cur  atomic.Pointer[table]
	// generation counts reloads, so that what was allowed under an older
	// file can be checked again (open watches).
	generation atomic.Uint64
	// verifying bounds the bcrypt checks running at once.
	verifying chan struct{}
}

// table is one loaded auth file.
type table struct {
	users, tokens map[string]*account

	mu       sync.Mutex
	verified map[[sha256.Size]byte]*Identity
}

type account struct {
	hash []byte
	id   *Identity
}

// Open loads the auth file at path.
func Open(path string) (*Store, error) {
	s := &Store{path: path, verifying: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the auth file's path.
func (s *Store) Path() string { return s.path }

// Reload reads the auth file again. A file that cannot be read or used
// leaves the one in force unchanged.
func (s *Store) Reload() error {
	t, err := load(s.path)
	if err != nil {
		return err
	}
	s.cur.Store(t)
	s.generation.Add(1)
	return nil
}

// Generation changes with every reload that took a new file.
func (s *Store) Generation() uint64 { return s.generation.Load() }

// Recheck returns the identity that the file now in force gives the same
// account with the same secret, or nil when the account is gone or its
// secret changed: what an open stream checks after a reload.
func (s *Store) Recheck(id *Identity) *Identity {
	t := s.cur.Load()
	accounts := t.users
	if id.Kind == KindToken {
		accounts = t.tokens
	}
	a, ok := accounts[id.Name]
	if !ok || !bytes.Equal(a.hash, id.hash) {
		return nil
	}
	return a.id
}

// Counts returns how many users and tokens the file in force defines.
func (s *Store) Counts() (users, tokens int) {
	t := s.cur.Load()
	return len(t.users), len(t.tokens)
}

func load(path string) (*table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidFile, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidFile, path, maxFileBytes)
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalidFile, path, err)
	}
	return t, nil
}

// parse reads and checks an auth file's contents.
func parse(data []byte) (*table, error) {
	var f fileFormat
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the JSON object")
	}
	if len(f.Users)+len(f.Tokens) == 0 {
		return nil, errors.New(`it defines no users and no tokens, so nobody could use the API; see docs/SECURITY.md`)
	}
	t := &table{users: map[string]*account{}, tokens: map[string]*account{},
		verified: map[[sha256.Size]byte]*Identity{}}
	for _, name := range sortedNames(f.Users) {
		a, err := newAccount(KindUser, name, f.Users[name])
		if err != nil {
			return nil, err
		}
		t.users[name] = a
	}
	for _, name := range sortedNames(f.Tokens) {
		a, err := newAccount(KindToken, name, f.Tokens[name])
		if err != nil {
			return nil, err
		}
		t.tokens[name] = a
	}
	return t, nil
}

func sortedNames(m map[string]entry) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func newAccount(kind Kind, name string, e entry) (*account, error) {
	what := fmt.Sprintf("%s %q", kind, name)
	if err := checkName(kind, name); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	hash, other := e.PasswordHash, e.TokenHash
	field, wrong := "password_hash", "token_hash"
	if kind == KindToken {
		hash, other = other, hash
		field, wrong = wrong, field
	}
	if other != "" {
		return nil, fmt.Errorf("%s: a %s has a %s, not a %s", what, kind, field, wrong)
	}
	if hash == "" {
		return nil, fmt.Errorf("%s: %s is missing", what, field)
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return nil, fmt.Errorf("%s: %s is not a bcrypt hash (make one with raftkv auth %s): %w", what, field, map[Kind]string{KindUser: "hash", KindToken: "token"}[kind], err)
	}
	return &account{hash: []byte(hash), id: &Identity{Name: name, Kind: kind, hash: []byte(hash),
		read: slices.Clone(e.Read), write: slices.Clone(e.Write), admin: e.Admin}}, nil
}

// checkName refuses names that cannot be sent: a user name cannot hold a
// colon (Basic auth splits there), a token name cannot hold a dot (a token
// is NAME.SECRET).
func checkName(kind Kind, name string) error {
	switch {
	case name == "":
		return errors.New("the name is empty")
	case kind == KindUser && strings.Contains(name, ":"):
		return errors.New("a user name cannot contain ':'")
	case kind == KindToken && strings.Contains(name, "."):
		return errors.New("a token name cannot contain '.'")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("the name contains control characters")
	}
	return nil
}

// dummyHash is checked against when the name is unknown, so that an unknown
// name takes as long to refuse as a wrong password and names cannot be
// probed by timing. It is made on first use: every raftkv command links
// this package, and only a node checking credentials needs it.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("raftkv: no such account"), bcrypt.DefaultCost)
	return h
})

// Authenticate returns the identity of r's credentials: HTTP Basic auth for
// a user, Authorization: Bearer NAME.SECRET for a token.
func (s *Store) Authenticate(ctx context.Context, r *http.Request) (*Identity, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, ErrNoCredentials
	}
	scheme, cred, _ := strings.Cut(h, " ")
	var kind Kind
	var name, secret string
	switch {
	case strings.EqualFold(scheme, "Basic"):
		var ok bool
		if name, secret, ok = r.BasicAuth(); !ok {
			return nil, fmt.Errorf("%w: the Basic credentials are not base64 of user:password", ErrBadCredentials)
		}
		kind = KindUser
	case strings.EqualFold(scheme, "Bearer"):
		var ok bool
		if name, secret, ok = strings.Cut(strings.TrimSpace(cred), "."); !ok {
			return nil, fmt.Errorf("%w: a token has the form NAME.SECRET", ErrBadCredentials)
		}
		kind = KindToken
	default:
		return nil, fmt.Errorf("%w: use Basic (user and password) or Bearer (token) authorization", ErrBadCredentials)
	}
	return s.cur.Load().check(ctx, s.verifying, kind, name, secret)
}

func (t *table) check(ctx context.Context, verifying chan struct{}, kind Kind, name, secret string) (*Identity, error) {
	key := digest(kind, name, secret)
	t.mu.Lock()
	id := t.verified[key]
	t.mu.Unlock()
	if id != nil {
		return id, nil
	}
	accounts := t.users
	if kind == KindToken {
		accounts = t.tokens
	}
	a, ok := accounts[name]
	var hash []byte
	if ok {
		hash = a.hash
	} else {
		hash = dummyHash()
	}
	select {
	case verifying <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(secret))
	<-verifying
	if !ok || err != nil {
		return nil, fmt.Errorf("%w: unknown %s or wrong %s", ErrBadCredentials, kind, map[Kind]string{KindUser: "password", KindToken: "token"}[kind])
	}
	t.mu.Lock()
	if len(t.verified) >= maxCached {
		clear(t.verified)
	}
	t.verified[key] = a.id
	t.mu.Unlock()
	return a.id, nil
}

// digest names a secret that passed in the memory of verified secrets.
func digest(kind Kind, name, secret string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(secret))
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}
