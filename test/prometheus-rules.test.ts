// The alert rules (deploy/prometheus/alerts.yml) with Prometheus's own tool: promtool
// checks them and runs alerts.test.yml (a firing and a quiet case for every alert), and
// the PrometheusRule in k8s/ carries exactly the same groups. Needs `promtool` (Debian's
// prometheus package; .ci/run installs it).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const RULES = join(ROOT, "deploy/prometheus/alerts.yml");
const RULE_TESTS = join(ROOT, "deploy/prometheus/alerts.test.yml");
const ALERTS = ["BatchgenBacklogWithoutWorkers", "BatchgenBatchStuck", "BatchgenErrorLineRate", "BatchgenLeaseExpiries"];

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function promtool(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync("promtool", args, { encoding: "utf8", cwd: dirname(RULES) });
  if (r.error) throw new Error(`cannot run promtool (apt-get install prometheus): ${r.error.message}`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("alert rules", () => {
  it("promtool checks deploy/prometheus/alerts.yml", () => {
    const r = promtool("check", "rules", RULES);
    expect(r.out).toContain(`SUCCESS: ${ALERTS.length} rules found`);
    expect(r.code).toBe(0);
  });

  it("promtool checks deploy/prometheus/prometheus.yml, which loads the alert rules", () => {
    const r = promtool("check", "config", join(ROOT, "deploy/prometheus/prometheus.yml"));
    expect(r.out).toMatch(/SUCCESS: 4 rules found/);
    expect(r.code, r.out).toBe(0);
  });

  it("promtool test rules: every alert has a firing and a quiet case, and all pass", () => {
    const tests = parse(readFileSync(RULE_TESTS, "utf8")) as Obj;
    for (const alert of ALERTS) {
      const cases = (tests.tests as Obj[]).flatMap((t) => (t.alert_rule_test as Obj[]).filter((c) => c.alertname === alert));
      expect(cases.some((c) => c.exp_alerts.length > 0), `${alert} has a firing case`).toBe(true);
      expect(cases.some((c) => c.exp_alerts.length === 0), `${alert} has a quiet case`).toBe(true);
    }
    const r = promtool("test", "rules", RULE_TESTS);
    expect(r.out).toContain("SUCCESS");
    expect(r.code, r.out).toBe(0);
  });

  it("the test cases would catch a broken rule (an alert that never fires fails them)", () => {
    const dir = mkdtempSync(join(tmpdir(), "bg-rules-"));
    try {
      const broken = readFileSync(RULES, "utf8").replace("> 3", "> 300");
      writeFileSync(join(dir, "alerts.yml"), broken);
      writeFileSync(join(dir, "alerts.test.yml"), readFileSync(RULE_TESTS, "utf8"));
      const r = spawnSync("promtool", ["test", "rules", "alerts.test.yml"], { encoding: "utf8", cwd: dir });
      expect(r.status).not.toBe(0);
      expect(`${r.stdout}${r.stderr}`).toContain("BatchgenLeaseExpiries");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("k8s/base/prometheusrule.yaml holds the same groups as deploy/prometheus/alerts.yml", () => {
    const [rule] = parseAllDocuments(readFileSync(join(ROOT, "k8s/base/prometheusrule.yaml"), "utf8")).map((d) => d.toJS() as Obj);
    expect(rule!.kind).toBe("PrometheusRule");
    expect(rule!.spec.groups).toEqual((parse(readFileSync(RULES, "utf8")) as Obj).groups);
    const kustomization = parse(readFileSync(join(ROOT, "k8s/base/kustomization.yaml"), "utf8")) as Obj;
    expect(kustomization.resources).toContain("prometheusrule.yaml");
  });
});
