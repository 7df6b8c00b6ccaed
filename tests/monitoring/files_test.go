package monitoring

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// severities are the values of the severity label the rules use.
var severities = []string{"critical", "warning"}

// TestAlertRules loads docs/monitoring/alerts.yml with Prometheus's rule
// parser and checks what the README promises of every alert: it waits
// (for), says how bad it is (severity), explains itself (summary,
// description), and has a section in docs/monitoring/README.md, which has no
// section for an alert that does not exist.
func TestAlertRules(t *testing.T) {
	groups := loadRules(t)
	doc, err := os.ReadFile(monitoringDoc)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^### (Raftkv\w+)`).FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: rule %q is not an alert", g.Name, r.Record)
				continue
			}
			alerts[r.Alert] = true
			if r.For <= 0 {
				t.Errorf("%s: no for", r.Alert)
			}
			if s := r.Labels["severity"]; !slices.Contains(severities, s) {
				t.Errorf("%s: severity %q, want one of %v", r.Alert, s, severities)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if !documented[r.Alert] {
				t.Errorf("%s: %s has no section \"### %s\"", r.Alert, monitoringDoc, r.Alert)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatal("alerts.yml has no alerts")
	}
	for name := range documented {
		if !alerts[name] {
			t.Errorf("%s documents %s, which alerts.yml does not have", monitoringDoc, name)
		}
	}
	// ruleReferences fails the test on an expression it cannot read.
	ruleReferences(t, groups)
}

// TestDashboard checks that docs/monitoring/raftkv-dashboard.json is a
// dashboard Grafana imports as this one is meant to be: every panel queries
// the data source the $datasource variable picks, the job and instance
// variables exist, panel ids are unique and panels fit the 24-column grid,
// and every query parses as PromQL once Grafana's variables are filled in.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later (data sources by uid)", d.SchemaVersion)
	}
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("variable datasource: %+v, want a data source variable of Prometheus data sources", v)
	}
	for _, name := range []string{"job", "instance"} {
		v, ok := vars[name]
		if !ok || v.Type != "query" {
			t.Errorf("variable %s: %+v, want a query variable", name, v)
			continue
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s: data source %+v, want uid ${datasource}", name, v.Datasource)
		}
	}

	ids := map[int]string{}
	queries := 0
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel %q: id %d already used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want uid ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		for _, target := range p.Targets {
			if target.Expr == "" {
				t.Errorf("panel %q %s: empty expr", p.Title, target.RefID)
			}
			if target.Datasource != nil && target.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q %s: data source %+v, want uid ${datasource}", p.Title, target.RefID, target.Datasource)
			}
			queries++
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}
	// dashboardReferences fails the test on a query it cannot read.
	dashboardReferences(t, d)
}
