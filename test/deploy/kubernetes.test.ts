import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import { Service } from "kubernetes-models/v1"
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1"
import { PodDisruptionBudget } from "kubernetes-models/policy/v1"
import { describe, expect, it } from "vitest"
import { parseAllDocuments } from "yaml"

/**
 * deploy/kubernetes/bulletin.yaml, validated offline against the Kubernetes
 * API's own OpenAPI schemas (kubernetes-models: every field's type, every
 * required field, every enum), then checked for what bulletin needs of it.
 */
const file = resolve(import.meta.dirname, "../../deploy/kubernetes/bulletin.yaml")
const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string }; spec: any })
const models: Record<string, new (o: any) => { validate: () => void }> = {
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
}
const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name)!

describe("the Kubernetes manifests", () => {
  it("validate against the Kubernetes API schemas, every one", () => {
    expect(docs.length).toBeGreaterThanOrEqual(12)
    for (const d of docs) {
      const Model = models[`${d.apiVersion}/${d.kind}`]
      expect(Model, `${d.apiVersion} ${d.kind} ${d.metadata.name}`).toBeDefined()
      expect(() => new Model!(d).validate(), `${d.kind} ${d.metadata.name}`).not.toThrow()
    }
  })

  it("reject what is not a valid object (the validation is real)", () => {
    const server = structuredClone(find("StatefulSet", "server"))
    server.spec.replicas = "three"
    expect(() => new StatefulSet(server).validate()).toThrow()
    const noSelector = structuredClone(find("StatefulSet", "server"))
    delete noSelector.spec.selector
    expect(() => new StatefulSet(noSelector).validate()).toThrow()
    const badPort = structuredClone(find("Service", "broker"))
    badPort.spec.ports[0].protocol = "SCTP-ish"
    expect(() => new Service(badPort).validate()).toThrow()
  })

  it("run the servers as a StatefulSet: stable names and DNS, a volume each, probes, a disruption budget", () => {
    const server = find("StatefulSet", "server")
    expect(server.spec.replicas).toBe(3)
    expect(server.spec.serviceName).toBe("server")
    const headless = find("Service", "server")
    expect(headless.spec.clusterIP).toBe("None")
    expect(headless.spec.publishNotReadyAddresses).toBe(true)
    expect(server.spec.volumeClaimTemplates[0].metadata.name).toBe("data")
    const c = server.spec.template.spec.containers[0]
    const env = Object.fromEntries(c.env.map((e: { name: string; value?: string }) => [e.name, e.value]))
    expect(env.SERVER_NAME).toBe("$(POD_NAME)")
    expect(env.PEER_ADDR).toBe("tcp://$(POD_NAME).server:5560")
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) expect(c[probe].exec.command).toEqual(["node", "bin/bulletin.js", "health", "server"])
    expect(find("PodDisruptionBudget", "server").spec.selector.matchLabels).toEqual(server.spec.selector.matchLabels)
  })

  it("give every container requests and limits, a non-root user, and the hosts PROTOCOL.md names as Services", () => {
    for (const d of docs.filter((d) => d.kind === "Deployment" || d.kind === "StatefulSet")) {
      expect(d.spec.template.spec.securityContext.runAsNonRoot, d.metadata.name).toBe(true)
      // Service links would set DASHBOARD_PORT=tcp://IP:5580 (and more) in every pod: names bulletin reads as settings.
      expect(d.spec.template.spec.enableServiceLinks, d.metadata.name).toBe(false)
      for (const c of d.spec.template.spec.containers) {
        expect(c.resources.requests.cpu, `${d.metadata.name}`).toBeDefined()
        expect(c.resources.limits.memory, `${d.metadata.name}`).toBeDefined()
      }
    }
    for (const host of ["broker", "proxy", "reference", "dashboard"]) expect(find("Service", host)).toBeDefined()
    expect(find("Service", "broker").spec.ports.map((p: { port: number }) => p.port)).toEqual([5555, 5556])
    expect(find("Service", "proxy").spec.ports.map((p: { port: number }) => p.port)).toEqual([5557, 5558])
  })
})
