/**
 * The lab's second instance (`createLab({ instances: 2 })`, for `start --spread`): a namespace
 * with its own uplink into the vpc, and a link from `instance`, where the emulator runs, to
 * where its agent listens. Addresses are in scripts/lab.ts's header.
 */
import type { Lab, Role } from "../lab.ts";
import { must } from "./proc.ts";

export async function buildInstance2(lab: Lab): Promise<void> {
  const veth = (a: string, aRole: Role, b: string, bRole: Role) =>
    must([
      "ip",
      "link",
      "add",
      "name",
      a,
      "netns",
      lab.ns(aRole),
      "type",
      "veth",
      "peer",
      "name",
      b,
      "netns",
      lab.ns(bRole),
    ]);
  const inNs = (role: Role, ...args: string[]) => must(["ip", "-n", lab.ns(role), ...args]);
  const x = lab.x;
  await veth("ctl0", "instance", "ctl0", "instance2");
  await inNs("instance", "addr", "add", `10.98.${x}.1/30`, "dev", "ctl0");
  await inNs("instance2", "addr", "add", `${lab.instance2Address}/30`, "dev", "ctl0");
  await veth(lab.instanceUplink, "instance2", "lab1", "vpc");
  await inNs(
    "instance2",
    "addr",
    "add",
    `${lab.instance2VpcAddress}/24`,
    "dev",
    lab.instanceUplink,
  );
  for (
    const [role, dev] of [["instance", "ctl0"], ["instance2", "ctl0"], ["instance2", "vpc0"], [
      "vpc",
      "lab1",
    ]] as const
  ) {
    await inNs(role, "link", "set", dev, "up");
  }
  // The vpc's one address answers on both links; instance2's replies leave by its own.
  await inNs(
    "vpc",
    "route",
    "add",
    `${lab.instance2VpcAddress}/32`,
    "dev",
    "lab1",
    "src",
    lab.serviceAddress,
  );
}
