/**
 * The destination map (src/emulator/destinations.ts) and the fixtures' `destinations:` key:
 * parsing, canonical IPv6, lookup, and errors that name the file, line and key.
 */
import assert from "node:assert/strict";
import {
  destinationMap,
  formatHostPort,
  mapDestination,
  parseHostPort,
} from "../../src/emulator/destinations.ts";
import { FixtureError, parseFixtures } from "../../src/emulator/fixtures.ts";

Deno.test("destinations: address:port in both families, canonical IPv6, ports 1-65535", () => {
  assert.deepEqual(parseHostPort("10.99.0.10:80"), { hostname: "10.99.0.10", port: 80 });
  assert.deepEqual(parseHostPort("[fd00:0:0::1]:443"), { hostname: "fd00::1", port: 443 });
  assert.deepEqual(parseHostPort("[FD00::A]:1"), { hostname: "fd00::a", port: 1 });
  assert.deepEqual(parseHostPort("127.0.0.1:65535"), { hostname: "127.0.0.1", port: 65535 });
  assert.equal(formatHostPort({ hostname: "fd00::1", port: 80 }), "[fd00::1]:80");
  const bad: [string, RegExp][] = [
    ["10.99.0.10", /is not an address:port/],
    ["fd00::1:80", /is not an address:port/],
    ["db.internal:5432", /"db\.internal" is not an IPv4 address/],
    ["10.99.0.300:80", /not an IPv4 address/],
    ["[fd00::g]:80", /"fd00::g" is not an IPv6 address/],
    ["[10.0.0.1]:80", /not an IPv6 address/],
    ["10.0.0.1:0", /port 0 is not in 1-65535/],
    ["10.0.0.1:65536", /port 65536 is not in 1-65535/],
    ["10.0.0.1:", /is not an address:port/],
    [" 10.0.0.1:80", /" 10\.0\.0\.1" is not an IPv4 address/],
  ];
  for (const [text, re] of bad) {
    const r = parseHostPort(text);
    assert.equal(typeof r, "string", text);
    assert.match(r as string, re, text);
  }
});

Deno.test("destinations: lookup by any spelling; host names and unmapped ones pass through", () => {
  const map = destinationMap(
    { "10.99.0.10:80": "127.0.0.1:8080", "[fd00::10]:443": "[::1]:8443" },
    { "10.99.0.2:53": "127.0.0.1:5353" },
  );
  assert.deepEqual(mapDestination(map, { hostname: "10.99.0.10", port: 80 }), {
    hostname: "127.0.0.1",
    port: 8080,
  });
  assert.deepEqual(mapDestination(map, { hostname: "fd00:0::0:10", port: 443 }), {
    hostname: "::1",
    port: 8443,
  });
  assert.deepEqual(mapDestination(map, { hostname: "10.99.0.2", port: 53 }), {
    hostname: "127.0.0.1",
    port: 5353,
  });
  for (
    const d of [
      { hostname: "10.99.0.10", port: 81 },
      { hostname: "10.99.0.11", port: 80 },
      { hostname: "db.internal", port: 80 },
      // The real agent cannot dial a bracketed host, so it is not mapped either.
      { hostname: "[fd00::10]", port: 443 },
    ]
  ) {
    assert.equal(mapDestination(map, d), d);
  }
  assert.equal(mapDestination(undefined, { hostname: "10.99.0.10", port: 80 }).port, 80);
  // A later record overrides an earlier one, whatever the spelling.
  const over = destinationMap({ "[fd00::1]:80": "127.0.0.1:1" }, { "[fd00:0::1]:80": "[::1]:2" });
  assert.deepEqual([...over], [["[fd00::1]:80", { hostname: "::1", port: 2 }]]);
});

Deno.test("destinations: a bad programmatic entry throws naming the entry and the side", () => {
  assert.throws(
    () => destinationMap({ "10.99.0.10": "127.0.0.1:8080" }),
    /^Error: destinations\["10\.99\.0\.10"\]: key: "10\.99\.0\.10" is not an address:port/,
  );
  assert.throws(
    () => destinationMap({ "10.99.0.10:80": "localhost:8080" }),
    /destinations\["10\.99\.0\.10:80"\]: value: "localhost" is not an IPv4 address/,
  );
  assert.throws(
    () => destinationMap({ "[fd00::1]:80": "127.0.0.1:1", "[fd00:0::1]:80": "127.0.0.1:2" }),
    /destinations\["\[fd00:0::1\]:80"\]: the same destination as "\[fd00::1\]:80"/,
  );
});

Deno.test("fixtures: destinations are read in canonical form; absent or empty is none", () => {
  const f = parseFixtures(
    [
      "destinations:",
      '  "10.99.0.10:80": "127.0.0.1:8080"',
      "  10.99.0.2:53: 127.0.0.1:5353",
      '  "[fd00:0::10]:443": "[::1]:8443"',
    ].join("\n"),
  );
  assert.deepEqual(f.destinations, {
    "10.99.0.10:80": "127.0.0.1:8080",
    "10.99.0.2:53": "127.0.0.1:5353",
    "[fd00::10]:443": "[::1]:8443",
  });
  assert.deepEqual(parseFixtures("account: '123456789012'\n").destinations, {});
  assert.deepEqual(parseFixtures("destinations:\n").destinations, {});
  assert.deepEqual(parseFixtures("destinations: {}\n").destinations, {});
});

Deno.test("fixtures: bad destinations name the file, line and key", () => {
  const cases: [string, RegExp][] = [
    [
      'destinations:\n  "10.99.0.10:80": "127.0.0.1:8080"\n  "10.99.0.11": "127.0.0.1:1"\n',
      /^FixtureError: w\.yaml:3: destinations\["10\.99\.0\.11"\]: key: "10\.99\.0\.11" is not an address:port/,
    ],
    [
      'destinations:\n  "10.99.0.10:80": "127.0.0.1:0"\n',
      /^FixtureError: w\.yaml:2: destinations\["10\.99\.0\.10:80"\]: value: port 0 is not in 1-65535$/,
    ],
    [
      'destinations:\n  "10.99.0.10:80":\n    - 127.0.0.1:8080\n',
      /^FixtureError: w\.yaml:3: destinations\["10\.99\.0\.10:80"\]: expected the address:port to dial/,
    ],
    [
      'destinations:\n  "10.99.0.10:80":\n',
      /^FixtureError: w\.yaml:2: destinations\["10\.99\.0\.10:80"\]: expected the address:port/,
    ],
    [
      "destinations:\n  ? [fd00::1]\n  : 127.0.0.1:80\n",
      /^FixtureError: w\.yaml:2: destinations: each key must be a quoted "address:port"/,
    ],
    [
      'destinations:\n  "[fd00::1]:80": "[::1]:1"\n  "[fd00:0::1]:80": "[::1]:2"\n',
      /^FixtureError: w\.yaml:3: destinations\["\[fd00:0::1\]:80"\]: the same destination as "\[fd00::1\]:80" above$/,
    ],
    [
      "destinations:\n  - 10.99.0.10:80\n",
      /^FixtureError: w\.yaml:2: destinations: expected a mapping of address:port to address:port$/,
    ],
  ];
  for (const [yaml, re] of cases) {
    assert.throws(() => parseFixtures(yaml, "w.yaml"), (e: unknown) => {
      assert.ok(e instanceof FixtureError);
      assert.match(`${e.name}: ${e.message}`, re);
      return true;
    }, yaml);
  }
});
