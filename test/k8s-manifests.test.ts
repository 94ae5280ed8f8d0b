// Checks of the deployment files, without a cluster or a Docker engine:
//  - k8s/: every YAML parses; base and overlays are rendered by a small kustomize subset
//    (below; it refuses any kustomization field it does not implement) and every object
//    is validated against the Kubernetes / KEDA / Prometheus Operator OpenAPI schemas
//    shipped by the kubernetes-models packages (types, required fields, enums; these
//    schemas do not reject unknown fields). Then cross-references: selectors match pod
//    labels, named ports exist, the ScaledObject targets the worker Deployment, every
//    ConfigMap / Secret / key / PVC referenced exists, the env in ConfigMaps and Secrets
//    passes the coordinator's and worker's own config schemas, and the worker's drain
//    fits its termination grace period.
//  - deploy/: docker-compose, Prometheus and Grafana files parse and agree with each
//    other, and every metric a dashboard panel or the KEDA query uses is one the
//    coordinator or worker source declares.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { Job } from "kubernetes-models/batch/v1/Job";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { createObjectStore, FsObjectStore, S3ObjectStore } from "@batchgen/core";
import { coordinatorConfigSchema, loadCoordinatorConfig } from "../packages/coordinator/src/coordinator-config.js";
import { loadWorkerConfig } from "../packages/worker/src/worker-config.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const K8S = join(ROOT, "k8s");
const DEPLOY = join(ROOT, "deploy");

// --- YAML ------------------------------------------------------------------------------

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function readYaml(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: Obj[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0) throw new Error(`${relative(ROOT, file)}: ${doc.errors.map((e) => e.message).join("; ")}`);
    if (doc.warnings.length > 0) throw new Error(`${relative(ROOT, file)}: ${doc.warnings.map((e) => e.message).join("; ")}`);
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (value !== null && value !== undefined) out.push(value as Obj);
  }
  return out;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return yamlFiles(p);
    return /\.ya?ml$/.test(name) ? [p] : [];
  });
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

// --- a kustomize subset ----------------------------------------------------------------
// Supports what k8s/ uses: resources (files and folders), namespace, labels (metadata
// only), images, replicas, and strategic-merge patches by file (including $patch: delete).
// Rendering of base and overlays was compared with `kubectl kustomize` (kustomize v5.5.0)
// when this was written; it gave the same objects.

const KUSTOMIZATION_FIELDS = new Set(["apiVersion", "kind", "metadata", "resources", "namespace", "labels", "images", "replicas", "patches"]);
// Strategic-merge keys of the lists we patch (as in the Kubernetes API's patchMergeKey).
const MERGE_KEYS: Record<string, string> = {
  containers: "name",
  initContainers: "name",
  env: "name",
  volumes: "name",
  volumeMounts: "mountPath",
};

function isMap(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function mergePatch(base: Obj, patch: Obj): Obj {
  const out = clone(base);
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete out[key];
    } else if (Array.isArray(value) && MERGE_KEYS[key] && Array.isArray(out[key])) {
      const mk = MERGE_KEYS[key]!;
      const list = out[key] as Obj[];
      for (const item of value as Obj[]) {
        const at = list.findIndex((x) => x[mk] === item[mk]);
        if (at < 0) list.push(clone(item));
        else list[at] = mergePatch(list[at]!, item);
      }
    } else if (isMap(value) && isMap(out[key])) {
      out[key] = mergePatch(out[key], value);
    } else {
      out[key] = clone(value);
    }
  }
  return out;
}

const sameObject = (a: Obj, b: Obj) => a.kind === b.kind && a.metadata?.name === b.metadata?.name;

function render(dir: string): Obj[] {
  const file = join(dir, "kustomization.yaml");
  const [k] = readYaml(file);
  if (!k) throw new Error(`${relative(ROOT, file)} is empty`);
  for (const field of Object.keys(k)) {
    if (!KUSTOMIZATION_FIELDS.has(field)) throw new Error(`${relative(ROOT, file)}: field "${field}" is not supported by this test's renderer`);
  }
  let objs: Obj[] = [];
  for (const r of (k.resources ?? []) as string[]) {
    const p = resolve(dir, r);
    if (!existsSync(p)) throw new Error(`${relative(ROOT, file)}: resource ${r} does not exist`);
    objs.push(...(statSync(p).isDirectory() ? render(p) : readYaml(p)));
  }
  for (const patchRef of (k.patches ?? []) as Obj[]) {
    if (Object.keys(patchRef).some((x) => x !== "path")) throw new Error(`${relative(ROOT, file)}: only patches with a path are supported`);
    const p = resolve(dir, patchRef.path as string);
    if (!existsSync(p)) throw new Error(`${relative(ROOT, file)}: patch ${patchRef.path} does not exist`);
    for (const patch of readYaml(p)) {
      const at = objs.findIndex((o) => sameObject(o, patch));
      if (at < 0) throw new Error(`${relative(ROOT, p)}: no ${patch.kind} ${patch.metadata?.name} to patch`);
      if (patch.$patch === "delete") objs.splice(at, 1);
      else objs[at] = mergePatch(objs[at]!, patch);
    }
  }
  for (const r of (k.replicas ?? []) as Obj[]) {
    const target = objs.find((o) => ["Deployment", "StatefulSet"].includes(o.kind) && o.metadata.name === r.name);
    if (!target) throw new Error(`${relative(ROOT, file)}: replicas for unknown workload ${r.name}`);
    target.spec.replicas = r.count;
  }
  for (const img of (k.images ?? []) as Obj[]) {
    for (const o of objs) {
      for (const c of podSpecOf(o) ? [...(podSpecOf(o)!.containers ?? []), ...(podSpecOf(o)!.initContainers ?? [])] : []) {
        const [name] = String(c.image).split(":");
        if (name === img.name) c.image = `${img.newName ?? name}:${img.newTag}`;
      }
    }
  }
  for (const l of (k.labels ?? []) as Obj[]) {
    if (l.includeSelectors || l.includeTemplates) throw new Error("labels with includeSelectors/includeTemplates are not supported here");
    for (const o of objs) o.metadata.labels = { ...(o.metadata.labels ?? {}), ...l.pairs };
  }
  if (k.namespace) {
    objs = objs.map((o) => (o.kind === "Namespace" ? o : { ...o, metadata: { ...o.metadata, namespace: k.namespace } }));
  }
  return objs;
}

// --- helpers over rendered objects -----------------------------------------------------

function podSpecOf(o: Obj): Obj | undefined {
  return ["Deployment", "StatefulSet", "Job", "DaemonSet"].includes(o.kind) ? o.spec?.template?.spec : undefined;
}

function podLabelsOf(o: Obj): Record<string, string> {
  return o.spec?.template?.metadata?.labels ?? {};
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function workloads(objs: Obj[]): Obj[] {
  return objs.filter((o) => podSpecOf(o));
}

function podsSelectedBy(objs: Obj[], selector: Record<string, string> | undefined): Obj[] {
  return workloads(objs).filter((w) => matches(selector, podLabelsOf(w)));
}

function containersOf(w: Obj): Obj[] {
  const spec = podSpecOf(w)!;
  return [...(spec.containers ?? []), ...(spec.initContainers ?? [])];
}

function containerPorts(w: Obj): Obj[] {
  return (podSpecOf(w)!.containers ?? []).flatMap((c: Obj) => c.ports ?? []);
}

function hasPort(w: Obj, port: string | number): boolean {
  return containerPorts(w).some((p) => (typeof port === "number" ? p.containerPort === port : p.name === port));
}

function find(objs: Obj[], kind: string, name: string): Obj | undefined {
  return objs.find((o) => o.kind === kind && o.metadata?.name === name);
}

function dataOf(o: Obj): Record<string, string> {
  const data: Record<string, string> = { ...(o.stringData ?? {}) };
  for (const [k, v] of Object.entries((o.data ?? {}) as Record<string, string>)) data[k] = o.kind === "Secret" ? Buffer.from(v, "base64").toString() : v;
  return data;
}

/** The environment a container starts with (ConfigMaps and Secrets resolved); unresolvable refs fail. */
function containerEnv(objs: Obj[], c: Obj, external: Set<string>): Record<string, string> | null {
  const env: Record<string, string> = {};
  let complete = true;
  for (const from of (c.envFrom ?? []) as Obj[]) {
    const ref = from.configMapRef ?? from.secretRef;
    const kind = from.configMapRef ? "ConfigMap" : "Secret";
    const src = find(objs, kind, ref.name);
    if (!src) {
      if (kind === "Secret" && external.has(ref.name)) complete = false;
      else throw new Error(`${c.name}: envFrom ${kind} ${ref.name} does not exist`);
    } else Object.assign(env, dataOf(src));
  }
  for (const e of (c.env ?? []) as Obj[]) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
    if (ref) {
      const kind = e.valueFrom.secretKeyRef ? "Secret" : "ConfigMap";
      const src = find(objs, kind, ref.name);
      if (!src) {
        if (kind === "Secret" && external.has(ref.name)) {
          complete = false;
          continue;
        }
        throw new Error(`${c.name}: ${kind} ${ref.name} (for ${e.name}) does not exist`);
      }
      const data = dataOf(src);
      if (!(ref.key in data)) throw new Error(`${c.name}: ${kind} ${ref.name} has no key ${ref.key} (for ${e.name})`);
      env[e.name] = data[ref.key]!;
    }
    if (e.valueFrom?.fieldRef) env[e.name] = "pod-name";
  }
  return complete ? env : null;
}

const MODELS: Record<string, { validate(): void } & (new (data: Obj) => { validate(): void })> = {
  "v1/ConfigMap": ConfigMap as never,
  "v1/Secret": Secret as never,
  "v1/Service": Service as never,
  "v1/Namespace": Namespace as never,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim as never,
  "apps/v1/Deployment": Deployment as never,
  "apps/v1/StatefulSet": StatefulSet as never,
  "batch/v1/Job": Job as never,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget as never,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy as never,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject as never,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor as never,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule as never,
};

function schemaErrors(o: Obj): string | null {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!Model) return `no schema known for ${o.apiVersion} ${o.kind}`;
  try {
    new Model(clone(o)).validate();
    return null;
  } catch (err) {
    return `${o.kind} ${o.metadata?.name}: ${(err as Error).message}`;
  }
}

function externalSecretsOf(dir: string): Set<string> {
  const [k] = readYaml(join(dir, "kustomization.yaml"));
  const list = String(k?.metadata?.annotations?.["batchgen.io/external-secrets"] ?? "");
  return new Set(list.split(",").map((s) => s.trim()).filter(Boolean));
}

/** Metric names the coordinator and worker sources declare ("batchgen_..." literals and `${PREFIX}name`). */
function declaredMetrics(): Set<string> {
  const names = new Set<string>();
  for (const pkg of ["coordinator", "worker"]) {
    const src = join(ROOT, "packages", pkg, "src");
    for (const file of readdirSync(src, { recursive: true }) as string[]) {
      if (!file.endsWith(".ts") || file.endsWith(".test.ts")) continue;
      const text = readFileSync(join(src, file), "utf8");
      for (const m of text.matchAll(/["'`](batchgen_(?:coordinator|worker)_[a-z0-9_]+)["'`]/g)) names.add(m[1]!);
      const prefix = /const\s+PREFIX\s*=\s*["'](batchgen_[a-z_]+)["']/.exec(text)?.[1];
      if (prefix) for (const m of text.matchAll(/`\$\{PREFIX\}([a-z0-9_]+)`/g)) names.add(prefix + m[1]!);
    }
  }
  return names;
}

/** batchgen_* metric names in a PromQL expression, histogram series mapped to their metric. */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\bbatchgen_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ""));
}

// --- the checks ------------------------------------------------------------------------

const OVERLAYS = readdirSync(join(K8S, "overlays")).filter((d) => existsSync(join(K8S, "overlays", d, "kustomization.yaml")));
const TARGETS: Array<[string, string]> = [["base", join(K8S, "base")], ...OVERLAYS.map((o): [string, string] => [`overlays/${o}`, join(K8S, "overlays", o)])];

describe("k8s/ manifests", () => {
  it("every YAML file parses cleanly and every object names apiVersion, kind and metadata.name", () => {
    const files = yamlFiles(K8S);
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      for (const o of readYaml(f)) {
        expect(typeof o.apiVersion, `${relative(ROOT, f)}: apiVersion`).toBe("string");
        expect(typeof o.kind, `${relative(ROOT, f)}: kind`).toBe("string");
        if (o.kind !== "Kustomization") expect(typeof o.metadata?.name, `${relative(ROOT, f)}: metadata.name`).toBe("string");
      }
    }
  });

  it("has a dev and a prod overlay", () => {
    expect(OVERLAYS.sort()).toEqual(["dev", "prod"]);
  });

  describe.each(TARGETS)("%s", (name, dir) => {
    const objs = render(dir);
    const external = name === "base" ? new Set<string>() : externalSecretsOf(dir);
    const kinds = (kind: string) => objs.filter((o) => o.kind === kind);

    it("renders the expected objects, each valid against its OpenAPI schema", () => {
      for (const kind of ["Deployment", "StatefulSet", "Service", "ConfigMap", "ScaledObject", "ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy"]) {
        expect(kinds(kind).length, `${name} has a ${kind}`).toBeGreaterThan(0);
      }
      const errors = objs.map(schemaErrors).filter(Boolean);
      expect(errors).toEqual([]);
      const ids = objs.map((o) => `${o.kind}/${o.metadata.name}`);
      expect(new Set(ids).size, "object names are unique per kind").toBe(ids.length);
    });

    it("puts every object in the overlay's namespace (overlays)", () => {
      if (name === "base") {
        expect(objs.every((o) => o.metadata.namespace === undefined)).toBe(true);
        return;
      }
      const ns = kinds("Namespace");
      expect(ns).toHaveLength(1);
      for (const o of objs.filter((x) => x.kind !== "Namespace")) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(ns[0]!.metadata.name);
    });

    it("workloads: selectors match their pod labels, images are pinned, resources and named probe ports exist", () => {
      for (const w of workloads(objs)) {
        if (w.kind !== "Job") expect(matches(w.spec.selector?.matchLabels, podLabelsOf(w)), `${w.kind} ${w.metadata.name} selector`).toBe(true);
        for (const c of containersOf(w)) {
          expect(c.image, `${w.metadata.name}/${c.name} image`).toMatch(/^[a-z0-9./_-]+:[A-Za-z0-9._-]+$/);
          expect(c.image, `${w.metadata.name}/${c.name} image tag`).not.toMatch(/:latest$/);
          expect(c.resources?.limits?.memory ?? c.resources?.requests?.memory ?? (w.kind === "Job" ? "n/a" : undefined), `${w.metadata.name}/${c.name} memory`).toBeDefined();
          for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
            const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
            if (port !== undefined) expect(hasPort(w, port), `${w.metadata.name}/${c.name} ${probe} port ${port}`).toBe(true);
          }
          const volumes = new Set(((podSpecOf(w)!.volumes ?? []) as Obj[]).map((v) => v.name));
          for (const t of (w.spec.volumeClaimTemplates ?? []) as Obj[]) volumes.add(t.metadata.name);
          for (const m of (c.volumeMounts ?? []) as Obj[]) expect(volumes.has(m.name), `${w.metadata.name}/${c.name} mounts ${m.name}`).toBe(true);
        }
        for (const v of (podSpecOf(w)!.volumes ?? []) as Obj[]) {
          if (v.persistentVolumeClaim) expect(find(objs, "PersistentVolumeClaim", v.persistentVolumeClaim.claimName), `PVC ${v.persistentVolumeClaim.claimName}`).toBeDefined();
        }
      }
    });

    it("every ConfigMap, Secret and key a container reads exists (or is declared external)", () => {
      for (const w of workloads(objs)) for (const c of containersOf(w)) expect(() => containerEnv(objs, c, external)).not.toThrow();
      if (name === "base") expect(external.size).toBe(0);
      for (const s of external) expect(find(objs, "Secret", s), `external secret ${s} is not also in the render`).toBeUndefined();
    });

    it("Services select pods that have every target port; StatefulSets have their headless Service", () => {
      for (const svc of kinds("Service")) {
        const pods = podsSelectedBy(objs, svc.spec.selector);
        expect(pods.length, `Service ${svc.metadata.name} selects a workload`).toBeGreaterThan(0);
        for (const p of svc.spec.ports as Obj[]) {
          const target = p.targetPort ?? p.port;
          for (const w of pods) expect(hasPort(w, target), `Service ${svc.metadata.name} port ${p.name} -> ${w.metadata.name}:${target}`).toBe(true);
        }
      }
      for (const sts of kinds("StatefulSet")) {
        const svc = find(objs, "Service", sts.spec.serviceName);
        expect(svc, `StatefulSet ${sts.metadata.name} serviceName`).toBeDefined();
        expect(svc!.spec.clusterIP).toBe("None");
      }
    });

    it("ServiceMonitors select Services with the named endpoint ports", () => {
      for (const sm of kinds("ServiceMonitor")) {
        const svcs = kinds("Service").filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels ?? {}));
        expect(svcs.length, `ServiceMonitor ${sm.metadata.name} selects a Service`).toBeGreaterThan(0);
        for (const ep of sm.spec.endpoints as Obj[]) {
          for (const s of svcs) expect((s.spec.ports as Obj[]).some((p) => p.name === ep.port), `${sm.metadata.name} -> ${s.metadata.name}:${ep.port}`).toBe(true);
        }
      }
      const coordinatorSvc = find(objs, "Service", "batchgen-coordinator")!;
      const workerPods = podsSelectedBy(objs, { "app.kubernetes.io/component": "worker", "app.kubernetes.io/name": "batchgen" });
      const scrapes = (pred: (s: Obj) => boolean) => kinds("ServiceMonitor").some((sm) => kinds("Service").filter(pred).some((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels ?? {})));
      expect(scrapes((s) => s === coordinatorSvc), "the coordinator is scraped").toBe(true);
      expect(scrapes((s) => podsSelectedBy(objs, s.spec.selector).some((w) => workerPods.includes(w))), "workers are scraped").toBe(true);
    });

    it("PodDisruptionBudgets each cover exactly one workload", () => {
      for (const pdb of kinds("PodDisruptionBudget")) {
        expect(podsSelectedBy(objs, pdb.spec.selector.matchLabels).map((w) => w.metadata.name), `PDB ${pdb.metadata.name}`).toHaveLength(1);
      }
    });

    it("NetworkPolicies select pods and name ports those pods have", () => {
      for (const np of kinds("NetworkPolicy")) {
        const own = podsSelectedBy(objs, np.spec.podSelector.matchLabels);
        expect(own.length, `NetworkPolicy ${np.metadata.name} selects pods`).toBeGreaterThan(0);
        for (const rule of (np.spec.ingress ?? []) as Obj[]) {
          for (const from of (rule.from ?? []) as Obj[]) {
            if (from.podSelector && !from.namespaceSelector) expect(podsSelectedBy(objs, from.podSelector.matchLabels).length, `${np.metadata.name} ingress from`).toBeGreaterThan(0);
          }
          for (const p of (rule.ports ?? []) as Obj[]) for (const w of own) expect(hasPort(w, p.port), `${np.metadata.name} ingress port ${p.port} on ${w.metadata.name}`).toBe(true);
        }
        for (const rule of (np.spec.egress ?? []) as Obj[]) {
          for (const to of (rule.to ?? []) as Obj[]) {
            if (to.podSelector && !to.namespaceSelector) {
              const dest = podsSelectedBy(objs, to.podSelector.matchLabels);
              expect(dest.length, `${np.metadata.name} egress to`).toBeGreaterThan(0);
              for (const p of (rule.ports ?? []) as Obj[]) for (const w of dest) expect(hasPort(w, p.port), `${np.metadata.name} egress port ${p.port} on ${w.metadata.name}`).toBe(true);
            }
          }
        }
      }
    });

    it("the KEDA ScaledObject scales the worker Deployment on a metric the coordinator exports", () => {
      const [so] = kinds("ScaledObject");
      expect(so!.spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: "batchgen-worker" });
      const target = find(objs, "Deployment", so!.spec.scaleTargetRef.name);
      expect(target).toBeDefined();
      expect(podLabelsOf(target!)["app.kubernetes.io/component"]).toBe("worker");
      expect(so!.spec.maxReplicaCount).toBeGreaterThanOrEqual(so!.spec.minReplicaCount ?? 0);
      const declared = declaredMetrics();
      for (const t of so!.spec.triggers as Obj[]) {
        expect(t.type).toBe("prometheus");
        const used = metricsIn(t.metadata.query);
        expect(used.length).toBeGreaterThan(0);
        for (const m of used) expect(declared.has(m), `KEDA query metric ${m} is declared by the coordinator`).toBe(true);
        expect(Number(t.metadata.threshold)).toBeGreaterThan(0);
      }
    });

    it("coordinator and worker environments pass their own config schemas and point at real Services", () => {
      const coord = find(objs, "Deployment", "batchgen-coordinator")!;
      const worker = find(objs, "Deployment", "batchgen-worker")!;
      const cEnv = containerEnv(objs, podSpecOf(coord)!.containers[0], external);
      const wEnv = containerEnv(objs, podSpecOf(worker)!.containers[0], external);
      // With external Secrets (prod), validate with stand-ins for what the Secret will hold.
      const stand = { BATCHGEN_API_KEYS: "sk-x:tenant", BATCHGEN_WORKER_TOKEN: "token", AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "x" };
      const coordinatorEnv = cEnv ?? { ...stand, ...containerEnv(objs, { ...podSpecOf(coord)!.containers[0], envFrom: podSpecOf(coord)!.containers[0].envFrom.filter((f: Obj) => f.configMapRef), env: [] }, external) };
      const workerEnv = wEnv ?? { ...containerEnv(objs, { ...podSpecOf(worker)!.containers[0], env: [] }, external), BATCHGEN_WORKER_TOKEN: "token" };
      const cfg = loadCoordinatorConfig({}, coordinatorEnv);
      const wcfg = loadWorkerConfig({ env: workerEnv });
      // Every BATCHGEN_ variable a ConfigMap sets is a real setting (no typos silently ignored).
      const coordinatorKeys = new Set(Object.keys(coordinatorConfigSchema.shape).map((k) => `BATCHGEN_${k.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()}`));
      for (const key of Object.keys(dataOf(find(objs, "ConfigMap", "batchgen-coordinator-config")!))) {
        if (key.startsWith("BATCHGEN_")) expect(coordinatorKeys.has(key), `coordinator setting ${key}`).toBe(true);
      }
      expect(() => createObjectStore(cfg.storeUrl, {})).not.toThrow();
      // Ports in config equal the container ports the Service targets.
      expect(hasPort(coord, cfg.httpPort) && containerPorts(coord).find((p) => p.containerPort === cfg.httpPort)?.name).toBe("http");
      expect(containerPorts(coord).find((p) => p.containerPort === cfg.grpcPort)?.name).toBe("grpc");
      expect(containerPorts(worker).find((p) => p.containerPort === wcfg.metricsPort)?.name).toBe("metrics");
      expect(cfg.httpHost).toBe("0.0.0.0");
      expect(cfg.grpcHost).toBe("0.0.0.0");
      // The worker dials the coordinator Service's gRPC port; the coordinator dials Redis.
      const [host, port] = wcfg.coordinator.split(":");
      const svc = find(objs, "Service", host!);
      expect(svc, `worker dials Service ${host}`).toBeDefined();
      expect((svc!.spec.ports as Obj[]).find((p) => p.port === Number(port))?.name).toBe("grpc");
      const redis = new URL(cfg.redisUrl);
      const redisSvc = find(objs, "Service", redis.hostname);
      expect(redisSvc, `coordinator dials Redis Service ${redis.hostname}`).toBeDefined();
      expect((redisSvc!.spec.ports as Obj[]).some((p) => p.port === Number(redis.port || 6379))).toBe(true);
      // Every model the coordinator accepts is one a worker serves.
      expect(cfg.models).toContain(wcfg.modelName);
    });

    it("safe by default: worker token, TLS and metrics key come from Secrets; workers see only the CA; probes use /healthz and /readyz", () => {
      const coord = find(objs, "Deployment", "batchgen-coordinator")!;
      const worker = find(objs, "Deployment", "batchgen-worker")!;
      const secretEnv = (w: Obj, name: string) => (podSpecOf(w)!.containers[0].env as Obj[]).find((e) => e.name === name)?.valueFrom?.secretKeyRef;
      expect(secretEnv(coord, "BATCHGEN_WORKER_TOKEN")).toEqual({ name: "batchgen-worker-token", key: "token" });
      expect(secretEnv(worker, "BATCHGEN_WORKER_TOKEN")).toEqual({ name: "batchgen-worker-token", key: "token" });
      expect(secretEnv(coord, "BATCHGEN_METRICS_KEY")).toEqual({ name: "batchgen-metrics-key", key: "key" });
      expect(secretEnv(worker, "BATCHGEN_WORKER_METRICS_KEY")).toEqual({ name: "batchgen-metrics-key", key: "key" });
      const cEnv = dataOf(find(objs, "ConfigMap", "batchgen-coordinator-config")!);
      const wEnv = dataOf(find(objs, "ConfigMap", "batchgen-worker-config")!);
      expect(cEnv.BATCHGEN_INSECURE_WORKERS).toBeUndefined();
      // The files the settings name are mounted from the TLS Secret; a worker gets only ca.crt.
      const mounted = (w: Obj, file: string): Obj | undefined => {
        const spec = podSpecOf(w)!;
        const m = (spec.containers[0].volumeMounts as Obj[]).find((v) => file.startsWith(v.mountPath + "/"));
        const vol = m && (spec.volumes as Obj[]).find((v) => v.name === m.name);
        return vol?.secret && (vol.secret.items as Obj[]).find((i) => i.path === file.slice(m!.mountPath.length + 1)) ? vol.secret : undefined;
      };
      for (const file of [cEnv.BATCHGEN_GRPC_TLS_CERT!, cEnv.BATCHGEN_GRPC_TLS_KEY!]) expect(mounted(coord, file)?.secretName, file).toBe("batchgen-grpc-tls");
      expect(mounted(worker, wEnv.BATCHGEN_WORKER_TLS_CA_FILE!)?.secretName).toBe("batchgen-grpc-tls");
      const workerItems = (podSpecOf(worker)!.volumes as Obj[]).flatMap((v) => (v.secret?.secretName === "batchgen-grpc-tls" ? (v.secret.items as Obj[]) : []));
      expect(workerItems.map((i) => i.key)).toEqual(["ca.crt"]);
      const tls = find(objs, "Secret", "batchgen-grpc-tls");
      if (tls) expect(Object.keys(dataOf(tls)).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
      else expect(external.has("batchgen-grpc-tls")).toBe(true);
      // Probes: alive is /healthz, ready is /readyz.
      for (const w of [coord, worker]) {
        const c = podSpecOf(w)!.containers[0];
        expect(c.readinessProbe?.httpGet?.path, w.metadata.name).toBe("/readyz");
        expect(c.livenessProbe?.httpGet?.path, w.metadata.name).toBe("/healthz");
      }
      // Listeners: loopback by default, so a pod must bind its ports itself.
      expect(wEnv.BATCHGEN_WORKER_METRICS_HOST).toBe("0.0.0.0");
      for (const sm of objs.filter((o) => o.kind === "ServiceMonitor")) {
        for (const ep of sm.spec.endpoints as Obj[]) {
          expect(ep.authorization, sm.metadata.name).toEqual({ type: "Bearer", credentials: { name: "batchgen-metrics-key", key: "key" } });
        }
      }
    });

    it("a worker's drain fits in its termination grace period; GPU unless the overlay runs on CPU", () => {
      const worker = find(objs, "Deployment", "batchgen-worker")!;
      const spec = podSpecOf(worker)!;
      const env = dataOf(find(objs, "ConfigMap", "batchgen-worker-config")!);
      const graceMs = Number(env.BATCHGEN_WORKER_GRACE_MS ?? 30_000);
      expect(spec.terminationGracePeriodSeconds * 1000, "terminationGracePeriodSeconds > drain grace + 10 s").toBeGreaterThanOrEqual(graceMs + 10_000);
      const c = spec.containers[0];
      expect(c.lifecycle?.preStop, "SIGTERM drains; no preStop hook").toBeUndefined();
      if (env.BATCHGEN_WORKER_DEVICE === "cpu") {
        expect(c.resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
      } else {
        expect(String(env.BATCHGEN_WORKER_DEVICE)).toMatch(/^cuda/);
        expect(Number(c.resources.limits["nvidia.com/gpu"])).toBe(1);
      }
    });
  });

  it("prod never ships the base's placeholder secrets; dev does not use GPUs", () => {
    const prod = render(join(K8S, "overlays", "prod"));
    const rendered = JSON.stringify(prod);
    expect(rendered).not.toContain("change-me");
    expect(externalSecretsOf(join(K8S, "overlays", "prod"))).toEqual(
      new Set(["batchgen-coordinator-secrets", "batchgen-worker-token", "batchgen-grpc-tls", "batchgen-metrics-key"]),
    );
    const dev = render(join(K8S, "overlays", "dev"));
    expect(JSON.stringify(dev)).not.toContain("nvidia.com/gpu\":");
  });

  it("the renderer refuses kustomization fields it does not implement", () => {
    const dir = mkdtempSync(join(tmpdir(), "bg-kustomize-"));
    try {
      writeFileSync(join(dir, "kustomization.yaml"), "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nconfigMapGenerator: []\n");
      expect(() => render(dir)).toThrow(/"configMapGenerator" is not supported/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("deploy/ files", () => {
  const compose = readYaml(join(DEPLOY, "docker-compose.yml"))[0]!;
  const services = compose.services as Record<string, Obj>;

  it("docker-compose has redis, minio, coordinator, worker, prometheus and grafana, built from Dockerfiles that exist", () => {
    for (const s of ["redis", "minio", "coordinator", "worker", "prometheus", "grafana"]) expect(services[s], s).toBeDefined();
    for (const [name, s] of Object.entries(services)) {
      if (s.build) expect(existsSync(join(DEPLOY, s.build.context, s.build.dockerfile)), `${name} Dockerfile`).toBe(true);
      for (const dep of Object.keys(isMap(s.depends_on) ? s.depends_on : Object.fromEntries((s.depends_on ?? []).map((d: string) => [d, {}])))) {
        expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
      }
      for (const v of (s.volumes ?? []) as string[]) {
        const src = v.split(":")[0]!;
        if (src.startsWith(".")) expect(existsSync(join(DEPLOY, src)), `${name} mounts ${src}`).toBe(true);
        else expect(compose.volumes, `${name} volume ${src}`).toHaveProperty(src);
      }
    }
  });

  it("compose environments pass the coordinator and worker config schemas and point at compose services", () => {
    const cfg = loadCoordinatorConfig({}, services.coordinator!.environment);
    const wcfg = loadWorkerConfig({ env: services.worker!.environment });
    const store = createObjectStore(cfg.storeUrl, services.coordinator!.environment);
    expect(store).toBeInstanceOf(S3ObjectStore);
    expect(store).not.toBeInstanceOf(FsObjectStore);
    expect(new URL(decodeURIComponent(new URL(cfg.storeUrl).searchParams.get("endpoint")!)).hostname).toBe("minio");
    expect(new URL(cfg.redisUrl).hostname).toBe("redis");
    expect(wcfg.coordinator).toBe(`coordinator:${cfg.grpcPort}`);
    expect(services.worker!.environment.BATCHGEN_WORKER_TOKEN).toBe(services.coordinator!.environment.BATCHGEN_WORKER_TOKEN);
    expect(cfg.models).toContain(wcfg.modelName);
    expect(services.coordinator!.ports).toContain(`${cfg.httpPort}:${cfg.httpPort}`);
    // docker stop waits longer than the worker's drain.
    expect(parseInt(services.worker!.stop_grace_period, 10) * 1000).toBeGreaterThan(wcfg.graceMs);
  });

  it("Prometheus scrapes the coordinator's HTTP port and the workers' metrics port", () => {
    const prom = readYaml(join(DEPLOY, "prometheus", "prometheus.yml"))[0]!;
    const cfg = loadCoordinatorConfig({}, services.coordinator!.environment);
    const wcfg = loadWorkerConfig({ env: services.worker!.environment });
    const job = (name: string) => (prom.scrape_configs as Obj[]).find((j) => j.job_name === name)!;
    expect(job("batchgen-coordinator").dns_sd_configs[0]).toMatchObject({ names: ["coordinator"], port: cfg.httpPort });
    expect(job("batchgen-worker").dns_sd_configs[0]).toMatchObject({ names: ["worker"], port: wcfg.metricsPort });
    expect(job("batchgen-coordinator").metrics_path).toBe("/metrics");
  });

  it("Grafana provisions the Prometheus datasource and the dashboards folder compose mounts", () => {
    const [ds] = readYaml(join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yml"));
    expect(ds!.datasources[0]).toMatchObject({ type: "prometheus", uid: "prometheus", url: "http://prometheus:9090" });
    const [provider] = readYaml(join(DEPLOY, "grafana", "provisioning", "dashboards", "batchgen.yml"));
    const path = provider!.providers[0].options.path as string;
    expect((services.grafana!.volumes as string[]).some((v) => v.endsWith(`:${path}:ro`) || v.split(":")[1] === path)).toBe(true);
  });

  it("every dashboard panel queries only metrics the coordinator or worker declare, and covers the required views", () => {
    const dash = JSON.parse(readFileSync(join(DEPLOY, "grafana", "dashboards", "batchgen.json"), "utf8")) as Obj;
    const declared = declaredMetrics();
    expect(declared.size).toBeGreaterThan(10);
    const panels = (dash.panels as Obj[]).filter((p) => p.type !== "row");
    const used = new Set<string>();
    for (const p of panels) {
      expect(p.targets?.length, `panel ${p.title} has queries`).toBeGreaterThan(0);
      expect(p.datasource.uid).toBe("${datasource}");
      for (const t of p.targets as Obj[]) {
        const names = metricsIn(t.expr);
        expect(names.length, `panel ${p.title}: ${t.expr}`).toBeGreaterThan(0);
        for (const m of names) {
          expect(declared.has(m), `panel "${p.title}" uses ${m}, which no coordinator/worker source declares`).toBe(true);
          used.add(m);
        }
        // Balanced brackets: a cheap guard against a mangled query.
        for (const [open, close] of [["(", ")"], ["[", "]"], ["{", "}"]] as const) {
          expect(t.expr.split(open).length, `${p.title}: ${open}${close} in ${t.expr}`).toBe(t.expr.split(close).length);
        }
      }
    }
    for (const required of [
      "batchgen_coordinator_batches",
      "batchgen_coordinator_shards",
      "batchgen_coordinator_shards_done_total",
      "batchgen_coordinator_shards_retried_total",
      "batchgen_coordinator_lines_completed_total",
      "batchgen_coordinator_tokens_completed_total",
      "batchgen_coordinator_results_total",
      "batchgen_coordinator_lease_expiries_total",
      "batchgen_worker_prompt_tokens_total",
      "batchgen_worker_generation_tokens_total",
      "batchgen_worker_requests_running",
      "batchgen_worker_requests_waiting",
      "batchgen_worker_kv_blocks_used",
      "batchgen_worker_engine_step_seconds",
      "batchgen_worker_prompt_tokens_cached_total",
    ]) {
      expect(used.has(required), `dashboard shows ${required}`).toBe(true);
    }
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("the Dockerfiles start the packages' built main.js and copy only paths that exist", () => {
    for (const [file, pkg] of [["Dockerfile.coordinator", "coordinator"], ["Dockerfile.worker", "worker"]] as const) {
      const text = readFileSync(join(DEPLOY, file), "utf8");
      expect(text).toContain(`CMD ["node", "packages/${pkg}/dist/main.js"]`);
      expect(existsSync(join(ROOT, "packages", pkg, "src", "main.ts")), `packages/${pkg}/src/main.ts`).toBe(true);
      for (const m of text.matchAll(/^COPY (?!--from)(?:--chown=\S+ )?(.+) \S+$/gm)) {
        for (const src of m[1]!.split(" ")) expect(existsSync(join(ROOT, src)), `${file}: COPY ${src}`).toBe(true);
      }
    }
  });
});
