package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

const (
	// etcdMemberCmd is the hidden first argument that makes the harness
	// binary run one etcd member instead of the comparison: each member is
	// a process of its own, as each raftkv node is, so that both systems pay
	// the same for processes, and their CPU time can be read apart.
	etcdMemberCmd = "etcd-member"
	// etcdClusterToken keeps a member from joining a stray cluster that
	// happens to use the same ports.
	etcdClusterToken = "bench-compare"
	// etcdDialTimeout bounds the client's first connection to its node.
	etcdDialTimeout = 5 * time.Second
)

// etcdMemberSpec is what a member process needs, passed as one argument:
// name,dir,peerURL,clientURL,initialCluster. The initial cluster holds
// commas itself, so it comes last and the split stops before it.
type etcdMemberSpec struct {
	name, dir, peerURL, clientURL, initialCluster string
}

func (s etcdMemberSpec) String() string {
	return strings.Join([]string{s.name, s.dir, s.peerURL, s.clientURL, s.initialCluster}, ",")
}

func parseEtcdMemberSpec(arg string) (etcdMemberSpec, error) {
	parts := strings.SplitN(arg, ",", 5)
	if len(parts) != 5 {
		return etcdMemberSpec{}, fmt.Errorf("member spec %q: want name,dir,peerURL,clientURL,initialCluster", arg)
	}
	return etcdMemberSpec{parts[0], parts[1], parts[2], parts[3], parts[4]}, nil
}

// runEtcdMember is the member process: it runs etcd embedded with its
// defaults, apart from identity, addresses and error-level logging, until
// SIGTERM or SIGINT, or until etcd fails.
func runEtcdMember(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one argument, got %d", etcdMemberCmd, len(args))
	}
	spec, err := parseEtcdMemberSpec(args[0])
	if err != nil {
		return err
	}
	peerURL, err := url.Parse(spec.peerURL)
	if err != nil {
		return fmt.Errorf("peer url: %w", err)
	}
	clientURL, err := url.Parse(spec.clientURL)
	if err != nil {
		return fmt.Errorf("client url: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = spec.name
	cfg.Dir = spec.dir
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.InitialCluster = spec.initialCluster
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.InitialClusterToken = etcdClusterToken
	cfg.LogLevel = "error"

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd %s: %w", spec.name, err)
	}
	defer e.Close()
	ready := time.NewTimer(readyTimeout)
	defer ready.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcd %s before ready: %w", spec.name, err)
	case <-ready.C:
		return fmt.Errorf("etcd %s: not ready after %v", spec.name, readyTimeout)
	case <-ctx.Done():
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd %s: %w", spec.name, err)
	case <-e.Server.StopNotify():
		return fmt.Errorf("etcd %s stopped by itself", spec.name)
	}
}

// startEtcd starts a fresh three-member etcd cluster as processes of this
// binary and waits until every member answers a Get. On error nothing is
// left running.
func startEtcd(ctx context.Context) (_ *cluster, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("etcd: find this binary to run members: %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-compare-etcd-")
	if err != nil {
		return nil, fmt.Errorf("etcd: data dir: %w", err)
	}
	c := &cluster{system: "etcd", dir: dir}
	defer func() {
		if err != nil {
			err = joinStop(err, c)
		}
	}()
	if strings.Contains(dir, ",") {
		return nil, fmt.Errorf("etcd: data dir %q holds a comma, which the member spec cannot carry", dir)
	}

	ports, err := freePorts(2 * nodes)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	specs := make([]etcdMemberSpec, nodes)
	initial := make([]string, nodes)
	for i := range nodes {
		specs[i] = etcdMemberSpec{
			name:      fmt.Sprintf("etcd%d", i+1),
			dir:       filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[i]),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[nodes+i]),
		}
		initial[i] = specs[i].name + "=" + specs[i].peerURL
	}
	env := os.Environ()
	for i := range specs {
		specs[i].initialCluster = strings.Join(initial, ",")
		p, err := startProc(specs[i].name, []string{self, etcdMemberCmd, specs[i].String()}, env, specs[i].dir+".log")
		if err != nil {
			return nil, fmt.Errorf("etcd: %w", err)
		}
		c.procs = append(c.procs, p)
	}

	for _, spec := range specs {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{spec.clientURL},
			DialTimeout: etcdDialTimeout,
			Logger:      zap.NewNop(),
			// 0 means clientv3's default of 100 retries; 1 is the fewest it
			// allows, the nearest to raftkv's single attempt, so that a
			// failing request shows as an error rather than as latency.
			MaxUnaryRetries: 1,
		})
		if err != nil {
			return nil, fmt.Errorf("etcd: client of %s: %w", spec.clientURL, err)
		}
		c.stores = append(c.stores, etcdStore{cli})
		err = waitUntil(ctx, "etcd member "+spec.name+" to answer a get", c.procs, func(ctx context.Context) error {
			_, err := cli.Get(ctx, "bench-compare-ready")
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// etcdStore sends the workloads' requests through clientv3, one client (one
// gRPC connection) per member.
type etcdStore struct{ c *clientv3.Client }

func (s etcdStore) put(ctx context.Context, key string, value []byte) error {
	_, err := s.c.Put(ctx, key, string(value))
	return err
}

func (s etcdStore) get(ctx context.Context, key string, serializable bool) error {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	_, err := s.c.Get(ctx, key, opts...)
	return err
}

// countKeys asks the member for the count, without the keys, of a range over
// keyPrefix, served from its own state (serializable).
func (s etcdStore) countKeys(ctx context.Context) (int64, error) {
	resp, err := s.c.Get(ctx, keyPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

func (s etcdStore) close() error {
	// clientv3's Close cancels the client's own context first and then
	// reports that cancellation, even when everything closed cleanly.
	if err := s.c.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
