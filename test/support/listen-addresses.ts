// The local addresses a TCP port of this machine is listening on, read from the kernel's
// socket tables (/proc/net/tcp and tcp6, Linux): "127.0.0.1", "::1", "0.0.0.0", "::", ...
// Tells a listener bound to loopback from one open to every interface.
import { readFileSync } from "node:fs";

const LISTEN = "0A";

function ipv4(hex: string): string {
  // Little-endian 32-bit word: 0100007F is 127.0.0.1.
  return [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join(".");
}

function ipv6(hex: string): string {
  // Four little-endian 32-bit words.
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) for (const i of [3, 2, 1, 0]) bytes.push(parseInt(hex.slice(w * 8 + i * 2, w * 8 + i * 2 + 2), 16));
  const groups = Array.from({ length: 8 }, (_, g) => ((bytes[g * 2]! << 8) | bytes[g * 2 + 1]!).toString(16));
  const text = groups.join(":");
  if (text === "0:0:0:0:0:0:0:0") return "::";
  if (text === "0:0:0:0:0:0:0:1") return "::1";
  return text;
}

export function listenAddresses(port: number): string[] {
  const out: string[] = [];
  for (const [file, decode] of [["/proc/net/tcp", ipv4], ["/proc/net/tcp6", ipv6]] as const) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue; // no IPv6 in this kernel
    }
    for (const row of text.trim().split("\n").slice(1)) {
      const [, local, , state] = row.trim().split(/\s+/);
      const [addr, portHex] = local!.split(":");
      if (state === LISTEN && parseInt(portHex!, 16) === port) out.push(decode(addr!));
    }
  }
  return out;
}
