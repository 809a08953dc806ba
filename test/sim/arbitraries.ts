import fc from "fast-check"
import { type Fault, type Scenario, brokerName, proxyName, referenceName, scenarioLimits, serverName } from "../../src/sim/scenario.ts"

/** Fault schedules for fast-check: same shape as `generateScenario`, but shrinkable. */
const faultArb = (nodes: ReadonlyArray<string>, servers: ReadonlyArray<string>, phaseMs: number): fc.Arbitrary<Fault> => {
  const at = fc.integer({ min: 0, max: phaseMs - 1 })
  const node = fc.constantFrom(...nodes)
  const server = fc.constantFrom(...servers)
  return fc.oneof(
    fc.record({ at, kind: fc.constant("partition" as const), groups: fc.shuffledSubarray([...nodes], { minLength: 1, maxLength: nodes.length - 1 }).map((g) => [g, nodes.filter((n) => !g.includes(n))]) }),
    fc.record({ at, kind: fc.constant("cut" as const), from: node, to: node }).filter((f) => f.from !== f.to),
    fc.record({ at, kind: fc.constant("heal" as const) }),
    fc.record({ at, kind: fc.constant("crash" as const), node }),
    fc.record({ at, kind: fc.constant("restart" as const), node }),
    fc.record({ at, kind: fc.constant("clockStep" as const), node: server, ms: fc.integer({ min: -scenarioLimits.clockStepMsMax, max: scenarioLimits.clockStepMsMax }) }),
    fc.record({ at, kind: fc.constant("diskFull" as const), node: server, forMs: fc.integer({ min: 100, max: scenarioLimits.diskFullMsMax }) }),
    fc.record({ at, kind: fc.constant("diskError" as const), node: server }),
  )
}

/** Off (real sockets), most of the time; sometimes also lossy, duplicating and reordering (harsher than any socket). */
const harshness = fc.oneof(
  { weight: 7, arbitrary: fc.constant({ dropRate: 0, duplicateRate: 0, reorderRate: 0 }) },
  {
    weight: 1,
    arbitrary: fc.record({
      dropRate: fc.double({ min: 0, max: scenarioLimits.dropRateMax, noNaN: true }),
      duplicateRate: fc.double({ min: 0, max: scenarioLimits.duplicateRateMax, noNaN: true }),
      reorderRate: fc.double({ min: 0, max: 0.3, noNaN: true }),
    }),
  },
)

export const scenarioArb: fc.Arbitrary<Scenario> = fc.integer({ min: 3, max: 5 }).chain((servers) => {
  const names = Array.from({ length: servers }, (_, i) => serverName(i))
  const nodes = [referenceName, proxyName, brokerName, ...names]
  const faultPhaseMs = 20_000
  return fc.record({
    seed: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    servers: fc.constant(servers),
    faultPhaseMs: fc.constant(faultPhaseMs),
    healPhaseMs: fc.constant(60_000),
    network: fc.record({ delayMinMs: fc.integer({ min: 1, max: 10 }), delayMaxMs: fc.integer({ min: 10, max: scenarioLimits.delayMsMax }), harsh: harshness }).map(({ harsh, ...d }) => ({ ...d, ...harsh })),
    healDelayMinMs: fc.integer({ min: 1, max: 5 }),
    healDelayMaxMs: fc.integer({ min: 5, max: 25 }),
    clocks: fc.array(
      fc.record({ skewMs: fc.integer({ min: -scenarioLimits.skewMsMax, max: scenarioLimits.skewMsMax }), driftPpm: fc.integer({ min: -scenarioLimits.driftPpmMax, max: scenarioLimits.driftPpmMax }) }),
      { minLength: servers, maxLength: servers },
    ),
    messagesPerSecond: fc.integer({ min: 0, max: 20 }),
    writesPerSecond: fc.integer({ min: 0, max: 30 }),
    clients: fc.integer({ min: 1, max: 3 }),
    bots: fc.integer({ min: 0, max: 1 }),
    hostile: fc.integer({ min: 0, max: 1 }),
    intruders: fc.integer({ min: 0, max: 1 }),
    disk: fc.record({ flushMsMin: fc.double({ min: 0.2, max: 2, noNaN: true }), flushMsMax: fc.double({ min: 2, max: scenarioLimits.flushMsMax, noNaN: true }) }),
    faults: fc.array(faultArb(nodes, names, faultPhaseMs), { maxLength: scenarioLimits.faultsMax }).map((fs) => [...fs].sort((a, b) => a.at - b.at)),
  })
})
