/**
 * A small account mixing EC2 instances and hybrid-activation managed instances (`mi-…`), for the
 * list-instances, target and wake tests. Some names and tags are hostile on purpose: they travel
 * as API parameters and must never be interpreted by anything.
 */

import { type Emulator, withEmulator } from "./harness_test.ts";

export const ONPREM_DB = "mi-0123456789abcdef0";
export const ONPREM_WEB = "mi-0aaaaaaaaaaaaaaa1";
export const NAMELESS = "mi-0bbbbbbbbbbbbbbb1";
export const EC2_DB = "i-0aaaaaaaaaaaaaaa1";

/** A Name tag and a tag that a shell would love to run; no `*`/`?`, so they match exactly. */
export const HOSTILE_NAME = "x $(touch /tmp/ssm-proxy-pwned); `id` \"'\\ <&> ü";
export const HOSTILE_KEY = "we ird;$(id)|`k`";
export const HOSTILE_VALUE = "v=1 && rm -rf / # \"'";

const q = JSON.stringify; // a JSON string is a YAML flow scalar

export const HYBRID_YAML = `
account: "210987654321"
callerArn: arn:aws:iam::210987654321:user/jane
instances:
  - id: i-0123456789abcdef0
    name: bastion
    tags: { Purpose: bastion, Team: infra }
    privateIp: 10.99.0.10
  - id: ${EC2_DB}
    name: db
    tags: { Purpose: db }
    privateIp: 10.99.0.20
  - id: ${ONPREM_DB}
    name: onprem-db
    tags: { Purpose: db, Name: rack7 }
    platformName: Ubuntu
    platformVersion: "22.04"
    privateIp: 192.168.1.20
  - id: ${ONPREM_WEB}
    name: onprem-web
    tags: { Purpose: web }
    pingStatus: ConnectionLost
    platform: Windows
    platformName: Microsoft Windows Server 2019 Datacenter
    privateIp: 192.168.1.21
  - id: ${NAMELESS}
    tags: { Name: ${q(HOSTILE_NAME)}, ${q(HOSTILE_KEY)}: ${q(HOSTILE_VALUE)} }
    privateIp: 192.168.1.22
`;

/** Runs `fn` against an emulator serving the hybrid account. */
export async function withHybrid<T>(fn: (emu: Emulator) => Promise<T>): Promise<T> {
  const f = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(f, HYBRID_YAML);
    return await withEmulator(f, fn);
  } finally {
    await Deno.remove(f);
  }
}
