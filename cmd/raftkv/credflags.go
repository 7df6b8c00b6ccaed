package main

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/raftkv/raftkv/client"
)

// credFlags are the credentials for a cluster with access control on: the
// client commands and bench take them. A password on the command line shows
// in ps; RAFTKV_PASSWORD or RAFTKV_TOKEN keep it out.
type credFlags struct {
	user, password, token string
}

func (f *credFlags) register(set *pflag.FlagSet) {
	set.StringVar(&f.user, "user", "", "user `NAME` for a cluster with access control on, or NAME:PASSWORD as etcdctl takes it (env RAFTKV_USER)")
	set.StringVar(&f.password, "password", "", "password of --user (env RAFTKV_PASSWORD, which keeps it out of ps)")
	set.StringVar(&f.token, "token", "", "token (NAME.SECRET) for a cluster with access control on, instead of --user (env RAFTKV_TOKEN)")
}

// check refuses a combination that cannot be sent and returns the user and
// password to send.
func (f *credFlags) check() (user, password string, err error) {
	user, password = f.user, f.password
	if name, pw, ok := strings.Cut(user, ":"); ok && password == "" {
		user, password = name, pw
	}
	switch {
	case f.token != "" && user != "":
		return "", "", usagef("--token and --user go separately: give one")
	case user == "" && password != "":
		return "", "", usagef("--password needs --user")
	case user != "" && password == "":
		return "", "", usagef("--user %s needs a password: --password, RAFTKV_PASSWORD or --user %s:PASSWORD", user, user)
	case f.token != "" && !strings.Contains(f.token, "."):
		return "", "", usagef("--token: a token has the form NAME.SECRET, as raftkv auth token prints it")
	}
	return user, password, nil
}

// options returns the client options that send the credentials.
func (f *credFlags) options() ([]client.Option, error) {
	user, password, err := f.check()
	switch {
	case err != nil:
		return nil, err
	case f.token != "":
		return []client.Option{client.WithToken(f.token)}, nil
	case user != "":
		return []client.Option{client.WithBasicAuth(user, password)}, nil
	}
	return nil, nil
}
