// An error meant for the person at the terminal: its message is the whole story, and
// main prints it as one line (never a stack trace).
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}
