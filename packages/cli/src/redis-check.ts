// A quick look at a Redis before `batchgen up` builds on it: the coordinator's client
// would otherwise retry an unreachable or refusing Redis forever, in silence.
import { Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { CliError } from "./cli-error.js";

function command(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
}

export async function checkRedis(url: string, timeoutMs = 5_000): Promise<void> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CliError(`REDIS_URL is not a URL: ${JSON.stringify(url)} (expected redis://host:port).`);
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") throw new CliError(`REDIS_URL must start with redis:// or rediss://; got ${JSON.stringify(url)}.`);
  const host = u.hostname || "127.0.0.1";
  const port = Number(u.port || 6379);
  const password = decodeURIComponent(u.password);
  const username = decodeURIComponent(u.username);
  const requests = [...(password ? [username ? command("AUTH", username, password) : command("AUTH", password)] : []), command("PING")];
  const where = `Redis at ${u.protocol}//${host}:${port}`;

  const replies = await new Promise<string>((resolve, reject) => {
    const socket: Socket = u.protocol === "rediss:" ? tlsConnect({ host, port, servername: host }) : new Socket().connect(port, host);
    let data = "";
    const done = (err?: Error) => {
      socket.destroy();
      if (err) reject(err);
      else resolve(data);
    };
    socket.setTimeout(timeoutMs, () => done(new CliError(`${where} did not answer within ${timeoutMs / 1000} s.`)));
    socket.once(u.protocol === "rediss:" ? "secureConnect" : "connect", () => socket.write(requests.join("")));
    socket.on("data", (d) => {
      data += d.toString();
      if (data.split("\r\n").filter((l) => /^[+-]/.test(l)).length >= requests.length || data.startsWith("-")) done();
    });
    socket.once("error", (err: NodeJS.ErrnoException) =>
      done(new CliError(`cannot reach ${where} (${err.code ?? err.message}). Start it, fix REDIS_URL, or unset REDIS_URL so batchgen up starts its own.`)),
    );
  });
  const error = replies.split("\r\n").find((l) => l.startsWith("-"));
  if (error) throw new CliError(`${where} refused: ${error.slice(1)}${/NOAUTH|WRONGPASS|AUTH/.test(error) ? " (put the password in REDIS_URL: redis://:PASSWORD@host:port)" : ""}.`);
}
