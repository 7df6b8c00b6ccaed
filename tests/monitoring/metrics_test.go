//go:build unix

package monitoring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsTimeout bounds the wait for every referenced family: rafthttp
// observes its first peer round trip 5 s after a peer is added.
const metricsTimeout = 45 * time.Second

// prometheusSeries are series Prometheus adds to every scrape itself, which
// no /metrics serves.
var prometheusSeries = []string{"up"}

// TestMetricsExist checks every metric that the alerting rules, the
// dashboard and README.md's "What to watch in /metrics" name against what a
// three-member cluster of raftkv processes serves on /metrics. Some families
// have no series, and so do not appear, until something happens: the request
// metrics until a request was answered, rafthttp's round-trip histogram
// until its first probe, its send failures until a message to a peer failed.
// The test makes each happen: a write and a read, then one member stopped.
func TestMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	series := ruleReferences(t, loadRules(t))
	for name, where := range dashboardReferences(t, loadDashboard(t)) {
		for _, w := range where {
			series.add(name, w)
		}
	}
	families := readmeReferences(t)
	if t.Failed() {
		t.FailNow()
	}

	members := startCluster(t, buildRaftkv(t), 3)
	ctx := t.Context()
	// A write through one member and a linearizable read through another,
	// retried while the cluster settles (503 before a leader is known).
	write := func() error {
		_, err := request(ctx, http.MethodPut, members[0].url("/monitoring"), "watched", http.StatusNoContent)
		return err
	}
	if err := eventually(ctx, startTimeout, write); err != nil {
		t.Fatal(err)
	}
	read := func() error {
		body, err := request(ctx, http.MethodGet, members[1].url("/monitoring"), "", http.StatusOK)
		if err == nil && string(body) != "watched" {
			err = fmt.Errorf("GET /monitoring: %q, want %q", body, "watched")
		}
		return err
	}
	if err := eventually(ctx, startTimeout, read); err != nil {
		t.Fatal(err)
	}
	// The survivors' heartbeats to a stopped member fail.
	if !members[2].stop() {
		t.Errorf("member 3 did not exit within %v of SIGTERM", stopTimeout)
	}
	survivors := members[:2]

	var served map[string]*dto.MetricFamily
	start := time.Now()
	err := eventually(ctx, metricsTimeout, func() error {
		var err error
		if served, err = scrapeAll(ctx, survivors); err != nil {
			return err
		}
		if missing := missingNames(series, families, served); len(missing) > 0 {
			return errors.New("not served:\n" + strings.Join(missing, "\n"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all %d series and %d families named were served after %v",
		len(series), len(families), time.Since(start).Round(time.Millisecond))
	for _, name := range slices.Sorted(maps.Keys(series)) {
		if problem := seriesProblem(name, served); problem != "" {
			t.Errorf("%s (used by %s)", problem, strings.Join(series[name], ", "))
		}
	}
}

// scrapeAll reads /metrics of every member and returns the union of their
// families.
func scrapeAll(ctx context.Context, members []*member) (map[string]*dto.MetricFamily, error) {
	all := map[string]*dto.MetricFamily{}
	for _, m := range members {
		body, err := request(ctx, http.MethodGet, m.url("/metrics"), "", http.StatusOK)
		if err != nil {
			return nil, err
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("member %d: parse /metrics: %w", m.id, err)
		}
		maps.Copy(all, mfs)
	}
	return all, nil
}

// missingNames lists, one per line, the series and families referenced that
// nothing served, with where each is used.
func missingNames(series, families references, served map[string]*dto.MetricFamily) []string {
	var missing []string
	for _, name := range slices.Sorted(maps.Keys(series)) {
		if _, ok := seriesFamily(name, served); !ok {
			missing = append(missing, fmt.Sprintf("  series %s (used by %s)", name, strings.Join(series[name], ", ")))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(families)) {
		if served[name] == nil {
			missing = append(missing, fmt.Sprintf("  family %s (named by %s)", name, strings.Join(families[name], ", ")))
		}
	}
	return missing
}

// classicSuffixes end the names of a classic histogram F's series (F_bucket,
// F_sum, F_count) and of a summary's besides F itself (F_sum, F_count).
var classicSuffixes = []string{"_bucket", "_sum", "_count"}

// seriesFamily returns the family a series name belongs to: the name itself,
// or the name without _bucket, _sum or _count.
func seriesFamily(name string, served map[string]*dto.MetricFamily) (*dto.MetricFamily, bool) {
	if slices.Contains(prometheusSeries, name) {
		return nil, true
	}
	if mf := served[name]; mf != nil {
		return mf, true
	}
	for _, suffix := range classicSuffixes {
		if base, ok := strings.CutSuffix(name, suffix); ok && served[base] != nil {
			return served[base], true
		}
	}
	return nil, false
}

// seriesProblem says why selecting series name would find nothing although
// its family is served: a histogram selected by its family name, or
// _bucket of a family that is not a histogram.
func seriesProblem(name string, served map[string]*dto.MetricFamily) string {
	mf, ok := seriesFamily(name, served)
	if !ok || mf == nil {
		return ""
	}
	kind := mf.GetType()
	histogram := kind == dto.MetricType_HISTOGRAM
	switch {
	case mf.GetName() == name && (histogram || kind == dto.MetricType_SUMMARY):
		return fmt.Sprintf("%s is a %s: select %s_bucket, _sum or _count", name, strings.ToLower(kind.String()), name)
	case strings.HasSuffix(name, "_bucket") && mf.GetName() != name && !histogram:
		return fmt.Sprintf("%s: %s is a %s, not a histogram", name, mf.GetName(), strings.ToLower(kind.String()))
	case mf.GetName() != name && !histogram && kind != dto.MetricType_SUMMARY:
		return fmt.Sprintf("%s: %s is a %s, which has no %s series", name, mf.GetName(), strings.ToLower(kind.String()), strings.TrimPrefix(name, mf.GetName()))
	}
	return ""
}
