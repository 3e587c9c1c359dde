/**
 * agentRegion (agent/instance_region.ts): the environment, else IMDSv2's placement/region. No
 * instance metadata service runs here, so a loopback server speaks IMDSv2's two requests (a PUT
 * for a token, a GET that must carry it), reached as the SDK reaches it in tests, through
 * AWS_EC2_METADATA_SERVICE_ENDPOINT.
 */
import assert from "node:assert/strict";
import { agentRegion } from "../../agent/instance_region.ts";

const TOKEN = "AQAEAtest-token==";

/** A loopback IMDSv2: `region` at placement/region, for holders of the token only. */
async function withImds<T>(
  region: string,
  fn: (url: string, seen: string[]) => Promise<T>,
): Promise<T> {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    seen.push(`${req.method} ${path}`);
    if (req.method === "PUT" && path === "/latest/api/token") {
      const ttl = Number(req.headers.get("x-aws-ec2-metadata-token-ttl-seconds"));
      return ttl >= 1 && ttl <= 21600
        ? new Response(TOKEN)
        : new Response("bad ttl", { status: 400 });
    }
    if (req.headers.get("x-aws-ec2-metadata-token") !== TOKEN) {
      return new Response("", { status: 401 });
    }
    if (req.method === "GET" && path === "/latest/meta-data/placement/region") {
      return new Response(region);
    }
    return new Response("", { status: 404 });
  });
  try {
    return await fn(`http://127.0.0.1:${server.addr.port}/`, seen);
  } finally {
    await server.shutdown();
  }
}

Deno.test("agentRegion: the environment first, without asking instance metadata", async () => {
  await withImds("eu-west-3", async (url, seen) => {
    const imds = { AWS_EC2_METADATA_SERVICE_ENDPOINT: url };
    assert.equal(await agentRegion({ ...imds, AWS_REGION: "us-east-2" }), "us-east-2");
    assert.equal(await agentRegion({ ...imds, AWS_DEFAULT_REGION: "ap-south-1" }), "ap-south-1");
    assert.deepEqual(seen, []);
  });
});

Deno.test("agentRegion: IMDSv2's placement/region, token first", async () => {
  await withImds("eu-west-3", async (url, seen) => {
    assert.equal(await agentRegion({ AWS_EC2_METADATA_SERVICE_ENDPOINT: url }), "eu-west-3");
    assert.deepEqual(seen, ["PUT /latest/api/token", "GET /latest/meta-data/placement/region"]);
    const disabled = { AWS_EC2_METADATA_SERVICE_ENDPOINT: url, AWS_EC2_METADATA_DISABLED: "true" };
    assert.equal(await agentRegion(disabled), undefined);
    assert.equal(seen.length, 2, "disabled: not asked");
  });
  await withImds("<html>captive portal</html>", async (url) => {
    assert.equal(await agentRegion({ AWS_EC2_METADATA_SERVICE_ENDPOINT: url }), undefined);
  });
});

Deno.test("agentRegion: no metadata service answering is no region, soon", async () => {
  // Accepts connections and never answers, like a black-holed 169.254.169.254.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of l) held.push(c);
  })();
  try {
    const t0 = Date.now();
    const url = `http://127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
    assert.equal(await agentRegion({ AWS_EC2_METADATA_SERVICE_ENDPOINT: url }), undefined);
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  } finally {
    l.close();
    await accepting.catch(() => {});
    for (const c of held) c.close();
  }
});
