// A throwaway certificate authority and a server certificate it signed (for "localhost"
// and 127.0.0.1), made with the openssl command line into a temporary folder.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificates {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A second CA that signed nothing here (a worker trusting it must not connect). */
  otherCaFile: string;
  cleanup(): void;
}

export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "bg-tls-"));
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  const ca = (name: string) =>
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${name}`, "-keyout", f(`${name}.key`), "-out", f(`${name}.pem`));
  ca("test-ca");
  ca("other-ca");
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", f("server.key"), "-out", f("server.csr"));
  writeFileSync(f("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  openssl("x509", "-req", "-in", f("server.csr"), "-CA", f("test-ca.pem"), "-CAkey", f("test-ca.key"), "-CAcreateserial", "-days", "1", "-extfile", f("san.ext"), "-out", f("server.pem"));
  return {
    caFile: f("test-ca.pem"),
    certFile: f("server.pem"),
    keyFile: f("server.key"),
    otherCaFile: f("other-ca.pem"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
