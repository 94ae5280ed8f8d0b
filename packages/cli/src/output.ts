// What commands print: results (ids, paths, tables) to stdout, so scripts can read
// them; narration to stderr.
export interface Output {
  result(text: string): void;
  info(text: string): void;
}

export const consoleOutput: Output = {
  result: (text) => void process.stdout.write(text + "\n"),
  info: (text) => void process.stderr.write(text + "\n"),
};
