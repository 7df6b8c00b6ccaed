package monitoring

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// The files under test, relative to this package's directory.
var (
	alertsFile    = filepath.Join("..", "..", "docs", "monitoring", "alerts.yml")
	dashboardFile = filepath.Join("..", "..", "docs", "monitoring", "raftkv-dashboard.json")
	monitoringDoc = filepath.Join("..", "..", "docs", "monitoring", "README.md")
	readme        = filepath.Join("..", "..", "README.md")
)

// promql parses expressions as Prometheus does by default.
var promql = parser.NewParser(parser.Options{})

// references maps each series name an expression selects to where it is
// used, for messages.
type references map[string][]string

func (r references) add(name, where string) {
	if !slices.Contains(r[name], where) {
		r[name] = append(r[name], where)
	}
}

// selectorNames adds the series names that expr selects. A selector without
// a name (only {__name__=~...}) is an error: the test could not say which
// metric it needs.
func selectorNames(expr, where string, refs references) error {
	ast, err := promql.ParseExpr(expr)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	var unnamed error
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name == "" {
			unnamed = fmt.Errorf("%s: selector %s names no metric", where, vs)
			return nil
		}
		refs.add(vs.Name, where)
		return nil
	})
	return unnamed
}

// loadRules parses the alerting rules with Prometheus's rule file parser,
// which also parses every expression and annotation template. Unknown fields
// are errors, and names must be valid under the legacy scheme, so that the
// file also loads in Prometheus 2.
func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.LegacyValidation, promql, logger)
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return groups
}

// ruleReferences returns the series names the rules' expressions select.
func ruleReferences(t *testing.T, groups *rulefmt.RuleGroups) references {
	t.Helper()
	refs := references{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			where := "alerts.yml " + cmp.Or(r.Alert, r.Record)
			if err := selectorNames(r.Expr, where, refs); err != nil {
				t.Error(err)
			}
		}
	}
	return refs
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": "..."} in newer Grafana
	Datasource *datasource     `json:"datasource"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

// allPanels returns the dashboard's panels, those in collapsed rows too.
func (d *dashboard) allPanels() []panel {
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return all
}

// query returns a query variable's query, whichever way it is stored.
func (v variable) query() (string, error) {
	if len(v.Query) == 0 {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor an object: %w", v.Name, err)
	}
	return o.Query, nil
}

var (
	// grafanaIntervals are the interval variables Grafana fills in.
	grafanaIntervals = regexp.MustCompile(`\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}`)
	// grafanaVariables are the dashboard's own variables: $job, ${instance}, ${instance:regex}.
	grafanaVariables = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	// labelValues is Grafana's label_values(selector, label) variable query.
	labelValues = regexp.MustCompile(`^\s*label_values\((.+),\s*\w+\s*\)\s*$`)
	// queryResult is Grafana's query_result(expr) variable query.
	queryResult = regexp.MustCompile(`^\s*query_result\((.+)\)\s*$`)
)

// expandGrafana turns a Grafana query into PromQL: intervals become 5m and
// variables a label value, as Grafana would substitute them.
func expandGrafana(expr string) string {
	expr = grafanaIntervals.ReplaceAllString(expr, "5m")
	return grafanaVariables.ReplaceAllString(expr, "x")
}

// dashboardReferences returns the series names the panels' queries and the
// query variables select.
func dashboardReferences(t *testing.T, d *dashboard) references {
	t.Helper()
	refs := references{}
	for _, p := range d.allPanels() {
		for _, target := range p.Targets {
			if target.Expr == "" {
				continue
			}
			where := fmt.Sprintf("dashboard panel %q %s", p.Title, target.RefID)
			if err := selectorNames(expandGrafana(target.Expr), where, refs); err != nil {
				t.Error(err)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := v.query()
		if err != nil {
			t.Error(err)
			continue
		}
		where := "dashboard variable " + v.Name
		var expr string
		if m := labelValues.FindStringSubmatch(q); m != nil {
			expr = m[1]
		} else if m := queryResult.FindStringSubmatch(q); m != nil {
			expr = m[1]
		} else {
			t.Errorf("%s: query %q is not label_values(selector, label) or query_result(expr), which this test reads", where, q)
			continue
		}
		if err := selectorNames(expandGrafana(expr), where, refs); err != nil {
			t.Error(err)
		}
	}
	return refs
}

// metricName matches a metric name of the families raftkv serves.
var metricName = regexp.MustCompile(`\b(?:raftkv|etcd|go|process)_[a-z0-9_]*[a-z0-9]\b`)

// readmeReferences returns the metric names README.md's "What to watch in
// /metrics" mentions: family names, as a reader would look them up.
func readmeReferences(t *testing.T) references {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "**What to watch in `/metrics`**")
	if !ok {
		t.Fatalf("%s has no \"What to watch in `/metrics`\"", readme)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	refs := references{}
	for _, name := range metricName.FindAllString(section, -1) {
		refs.add(name, "README.md What to watch")
	}
	if len(refs) == 0 {
		t.Fatalf("%s: What to watch names no metric", readme)
	}
	return refs
}
