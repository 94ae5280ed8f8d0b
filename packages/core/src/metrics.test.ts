import { Counter } from "prom-client";
import { describe, expect, it } from "vitest";
import { createRegistry, serveMetrics } from "./metrics.js";

describe("metrics", () => {
  it("createRegistry includes prefixed default process metrics", async () => {
    const registry = createRegistry("batchgen_test_");
    const text = await registry.metrics();
    expect(text).toContain("batchgen_test_process_cpu_user_seconds_total");
    expect(text).toContain("batchgen_test_nodejs_heap_size_used_bytes");
  });

  it("serveMetrics serves /metrics and /healthz on a free port, 404 elsewhere", async () => {
    const registry = createRegistry("batchgen_test2_");
    const lines = new Counter({ name: "batchgen_test2_lines_total", help: "lines", registers: [registry] });
    lines.inc(7);
    const server = await serveMetrics(registry, { port: 0, host: "127.0.0.1" });
    try {
      expect(server.port).toBeGreaterThan(0);
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain");
      expect(await res.text()).toMatch(/^batchgen_test2_lines_total 7$/m);
      expect((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: "POST" })).status).toBe(405);
    } finally {
      await server.close();
    }
    await expect(fetch(`http://127.0.0.1:${server.port}/metrics`)).rejects.toThrow();
  });

  it("serveMetrics can require a key for /metrics and answers /readyz from its check", async () => {
    let ready: { ready: true } | { ready: false; reason: string } = { ready: false, reason: "not connected" };
    const server = await serveMetrics(createRegistry(), { port: 0, keys: ["k1", "k2"], ready: async () => ready });
    const url = `http://127.0.0.1:${server.port}`;
    try {
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      expect((await fetch(`${url}/metrics`, { headers: { authorization: "Bearer nope" } })).status).toBe(401);
      expect((await fetch(`${url}/metrics`, { headers: { authorization: "Bearer k2" } })).status).toBe(200);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const r = await fetch(`${url}/readyz`);
      expect(r.status).toBe(503);
      expect(await r.text()).toContain("not connected");
      ready = { ready: true };
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it("serveMetrics fails clearly when the port is taken", async () => {
    const a = await serveMetrics(createRegistry(), { port: 0, host: "127.0.0.1" });
    try {
      await expect(serveMetrics(createRegistry(), { port: a.port, host: "127.0.0.1" })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await a.close();
    }
  });
});
