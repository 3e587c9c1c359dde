/** In the background there is no terminal: console output goes to a log file, timestamped. */
export function logTo(path: string): void {
  const file = Deno.openSync(path, { write: true, create: true, append: true });
  const enc = new TextEncoder();
  const write = (...a: unknown[]) => {
    const line = a.map((x) => (typeof x === "string" ? x : Deno.inspect(x))).join(" ");
    file.writeSync(enc.encode(`${new Date().toISOString()} ${line}\n`));
  };
  console.log = write;
  console.error = write;
}
