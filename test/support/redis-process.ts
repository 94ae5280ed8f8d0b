// A redis-server of a test's own (on a free port, AOF in a temporary folder) that the
// test may stop, start again with its data, or start again empty (a Redis that lost
// everything), to inject Redis faults; or one that serves TLS only (rediss://).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { freePort } from "./global-setup.js";

/** PEM files of a TLS-only redis-server: its certificate and key, and the CA it trusts for client certificates (none asked). */
export interface RedisTlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

export class RedisProcess {
  private child: ChildProcess | null = null;
  private dir: string;

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[],
    private readonly tls: RedisTlsFiles | null,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), "bg-redis-fault-"));
  }

  /**
   * `extraArgs`: more redis-server flags, e.g. ["--requirepass", "secret"]. With `tls` it
   * serves TLS only on its port (no plaintext port; clients need no certificate).
   */
  static async start(extraArgs: string[] = [], tls: RedisTlsFiles | null = null): Promise<RedisProcess> {
    const r = new RedisProcess(await freePort(), extraArgs, tls);
    await r.startAgain();
    return r;
  }

  get url(): string {
    return `${this.tls ? "rediss" : "redis"}://127.0.0.1:${this.port}`;
  }

  /** (Re)starts on the same port with the data it has (AOF, fsync on every write). */
  async startAgain(): Promise<void> {
    if (this.child) return;
    const port = String(this.port);
    const listen = this.tls
      ? ["--port", "0", "--tls-port", port, "--tls-cert-file", this.tls.certFile, "--tls-key-file", this.tls.keyFile, "--tls-ca-cert-file", this.tls.caFile, "--tls-auth-clients", "no"]
      : ["--port", port];
    const args = [...listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", this.dir, ...this.extraArgs];
    const child = spawn("redis-server", args, { stdio: "ignore" });
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!(await ping(this.port, this.tls !== null))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not start`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Stops it: SIGTERM (AOF flushed) or SIGKILL. */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    await exited;
  }

  /** Restarts with nothing: a Redis that came back without its data. */
  async restartEmpty(): Promise<void> {
    await this.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
    this.dir = mkdtempSync(join(tmpdir(), "bg-redis-fault-"));
    await this.startAgain();
  }

  async close(): Promise<void> {
    await this.stop("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function ping(port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    // Up is all it asks: over TLS any certificate will do.
    const s = tls ? tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false }) : new Socket();
    s.once("error", () => resolve(false));
    const onConnect = () => {
      s.write("PING\r\n");
      s.once("data", (d) => {
        s.destroy();
        // A Redis that wants AUTH answers -NOAUTH: it is up.
        resolve(d.toString().startsWith("+PONG") || d.toString().startsWith("-NOAUTH"));
      });
    };
    if (tls) s.once("secureConnect", onConnect);
    else s.connect(port, "127.0.0.1", onConnect);
  });
}
