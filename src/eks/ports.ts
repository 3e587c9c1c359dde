/**
 * The local port of a port-forward: in the dynamic range 49152–65535, not one another
 * kubeconfig cluster points at (it may just be down right now), and free to bind.
 */
export const PORT_MIN = 49152;
export const PORT_MAX = 65535;

/**
 * Tries candidates from a starting point (random in use, so two clusters connected at once do
 * not race for the same port) and returns the first that is not reserved and binds.
 */
export function choosePort(
  reserved: Set<number>,
  canBind: (port: number) => boolean,
  start = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN + 1)),
): number | undefined {
  const span = PORT_MAX - PORT_MIN + 1;
  for (let i = 0; i < span; i++) {
    const port = PORT_MIN + ((start - PORT_MIN + i) % span);
    if (!reserved.has(port) && canBind(port)) return port;
  }
  return undefined;
}

export function canBindLocal(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port, transport: "tcp" }).close();
    return true;
  } catch {
    return false;
  }
}
