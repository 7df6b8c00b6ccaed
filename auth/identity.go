package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Kind is how an identity presents itself.
type Kind string

// The kinds of identity.
const (
	KindUser  Kind = "user"
	KindToken Kind = "token"
)

// Identity is a user or token of the auth file and what it may do. Its
// fields never change: a reload makes new identities.
type Identity struct {
	Name string
	Kind Kind

	read, write []string
	admin       bool
	hash        []byte // of the secret that proves it, for Recheck
}

func (id *Identity) String() string { return string(id.Kind) + " " + id.Name }

// Admin reports whether the identity may do everything.
func (id *Identity) Admin() bool { return id.admin }

// CanRead reports whether the identity may read key.
func (id *Identity) CanRead(key []byte) bool { return id.admin || covers(id.read, key) }

// CanWrite reports whether the identity may write key.
func (id *Identity) CanWrite(key []byte) bool { return id.admin || covers(id.write, key) }

// CanReadAll reports whether the identity may read every key that starts
// with prefix, including keys written later.
func (id *Identity) CanReadAll(prefix []byte) bool { return id.admin || covers(id.read, prefix) }

// CanWriteAll reports whether the identity may write every key that starts
// with prefix.
func (id *Identity) CanWriteAll(prefix []byte) bool { return id.admin || covers(id.write, prefix) }

// ReadPrefixes returns the key prefixes the identity may read, none a
// prefix of another, sorted.
func (id *Identity) ReadPrefixes() []string { return minimal(id.read) }

// WritePrefixes returns the key prefixes the identity may write, none a
// prefix of another, sorted.
func (id *Identity) WritePrefixes() []string { return minimal(id.write) }

// minimal sorts prefixes and leaves out those that another covers.
func minimal(prefixes []string) []string {
	ps := slices.Sorted(slices.Values(prefixes))
	var out []string
	for _, p := range ps {
		// Sorted, a prefix comes before every string it covers.
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// covers reports whether one of prefixes is a prefix of key: every key
// starting with key then starts with it too.
func covers(prefixes []string, key []byte) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(string(key), p) {
			return true
		}
	}
	return false
}

// DefaultCost is the bcrypt cost of the hashes HashPassword and NewToken
// make unless told otherwise: bcrypt's default, tens of milliseconds a
// check.
const DefaultCost = bcrypt.DefaultCost

// MinCost is the least cost bcrypt takes: fast to check and to guess, for
// tests.
const MinCost = bcrypt.MinCost

// checkCost refuses a cost bcrypt does not take.
func checkCost(cost int) error {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return fmt.Errorf("bcrypt cost %d: use %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return nil
}

// HashPassword returns the bcrypt hash of a password at cost, for the auth
// file.
func HashPassword(password string, cost int) (string, error) {
	switch {
	case password == "":
		return "", errors.New("the password is empty")
	case len(password) > 72:
		// bcrypt reads only the first 72 bytes; a longer password would
		// seem stronger than it is.
		return "", fmt.Errorf("the password is %d bytes; bcrypt takes at most 72", len(password))
	}
	if err := checkCost(cost); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	return string(h), err
}

// NewToken returns a new random token for name, NAME.SECRET with 256 bits
// of secret, and its hash at cost for the auth file.
func NewToken(name string, cost int) (token, hash string, err error) {
	if err := checkName(KindToken, name); err != nil {
		return "", "", err
	}
	if err := checkCost(cost); err != nil {
		return "", "", err
	}
	// 32 random bytes are 43 characters of base64; bcrypt reads 72 bytes,
	// so the whole secret counts.
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	h, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
	if err != nil {
		return "", "", err
	}
	return name + "." + secret, string(h), nil
}
