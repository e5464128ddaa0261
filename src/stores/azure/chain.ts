/**
 * Key Vault has no compare-and-set for secrets (no ETag; If-Match is ignored; a tag update
 * replaces the whole map), so a key's record is kept as an append-only chain of versions of
 * its state secret. Every write is a new version tagged with its parent's version id and a
 * sequence number (parent's + 1). Two writers that read the same head both append a child of
 * it: a fork. Every reader resolves forks with the same rule:
 *
 *   of the children of a node, the one with the earliest `createdOn` (Key Vault's own clock,
 *   whole seconds) wins; equal seconds are broken by the smaller version id.
 *
 * Order along the chain is by provkey's own sequence and parent links, never by time; time
 * only breaks forks. Why that makes a claim exclusive: a writer decides whether it won only
 * from a listing that STARTED at least one second (`settle`) after its own write was
 * acknowledged. Any sibling missing from that listing was written after the listing began,
 * so its `createdOn` is a later second than the writer's: it can never be the earliest. The
 * earliest child in that listing is therefore the earliest child there will ever be, every
 * contender computes the same one, and exactly one of them sees itself win (the proof and its
 * assumptions: docs/azure.md). Losers' versions stay behind as dead branches nobody follows.
 *
 * Why provkey's own sequence cannot decide a fork alone: two writers that read the same head
 * write siblings with the same seq and parent; one that lists before the other's write lands
 * sees only itself, the other sees both, and both would see themselves win. A fork needs an
 * order of the SERVER's that no later write can precede, and createdOn is the only one Key
 * Vault gives: at whole seconds, that costs the settle. A server that promises each new version
 * of a secret a later createdOn second than the one before (a test double's
 * `emulator.strictlyIncreasingCreatedOn`) makes any sibling missing from a listing later than
 * everything in it, so no settle is needed; the store checks that promise on every listing.
 */

export interface ChainNode {
  /** Key Vault version id (lower-case hex). */
  versionId: string;
  /** Key Vault's createdOn, in whole seconds. */
  createdOn: number;
  /** provkey's own sequence: 1 for the first state, parent's + 1 after. */
  seq: number;
  /** The parent's version id, or ROOT for the first state of a key. */
  parent: string;
}

export const ROOT = 'root';

export const TAG = {
  managedBy: 'managed-by',
  key: 'provkey-key',
  seq: 'provkey-seq',
  parent: 'provkey-parent',
  version: 'provkey-version',
  fingerprint: 'provkey-fingerprint',
  /** On value versions: a copy of the label, for apps reading Key Vault directly (the state is the truth). */
  label: 'provkey-label',
} as const;

/** The chain from the first state to the head (empty when the key has no state). */
export function resolveChain(nodes: readonly ChainNode[]): ChainNode[] {
  const children = new Map<string, ChainNode[]>();
  for (const node of nodes) {
    const list = children.get(node.parent) ?? [];
    list.push(node);
    children.set(node.parent, list);
  }
  const chain: ChainNode[] = [];
  let parent = ROOT;
  let seq = 0;
  for (;;) {
    const candidates = (children.get(parent) ?? []).filter((n) => n.seq === seq + 1);
    const winner = earliest(candidates);
    if (!winner) return chain;
    chain.push(winner);
    parent = winner.versionId;
    seq = winner.seq;
  }
}

function earliest(nodes: readonly ChainNode[]): ChainNode | undefined {
  let best: ChainNode | undefined;
  for (const node of nodes) {
    if (!best || node.createdOn < best.createdOn || (node.createdOn === best.createdOn && node.versionId < best.versionId)) best = node;
  }
  return best;
}

/** Reads a listed version's chain tags; undefined for a version provkey did not write. */
export function chainNodeOf(versionId: string, createdOn: Date | undefined, tags: Record<string, string> | undefined): ChainNode | undefined {
  const seq = Number(tags?.[TAG.seq]);
  const parent = tags?.[TAG.parent];
  if (!createdOn || !Number.isSafeInteger(seq) || seq < 1 || !parent) return undefined;
  return { versionId: versionId.toLowerCase(), createdOn: Math.floor(createdOn.getTime() / 1000), seq, parent: parent.toLowerCase() };
}

export function revisionOf(node: ChainNode): string {
  return `${node.seq}.${node.versionId}`;
}
