import { FAT_BAD_CLUSTER, FAT_END_OF_CHAIN } from './fat.js';
import { corruptExfat, isHeapCluster, type ExfatLayout } from './layout.js';

/**
 * The clusters of one file, directory or system stream, in order: consecutive from the first cluster
 * when the stream extension says NoFatChain (specification 6.4.2.2), else linked through the FAT (4.1).
 *
 * A FAT chain is walked once, whole, before its first clusters are handed out, so that no byte of a
 * damaged chain is ever returned: the walk records a checkpoint every `stride` clusters (at most 65,536
 * of them), and later reads walk on from the nearest checkpoint or from a cursor left by the previous
 * read. The chain must cover the clusters the size needs, and the entry after the last of them must end
 * the chain. That one check proves the chain has no loop among those clusters (a loop never reaches an
 * end); when it fails, the rest of the chain is followed with Brent's cycle detection, to tell a loop
 * (an error) from a chain merely longer than the size (a warning).
 */

/** Consecutive clusters on the volume. */
export interface ClusterRun {
  cluster: number;
  count: number;
}

const MAX_CHECKPOINTS = 65536;

export class ClusterChain {
  private readonly layout: ExfatLayout;
  /** Names the owner in messages: "/dir/file", "root directory", "up-case table". */
  readonly what: string;
  readonly first: number;
  /** Clusters the size needs. */
  readonly length: number;
  readonly contiguous: boolean;
  private readonly stride: number;
  /** checkpoints[k] = the cluster at index k * stride. */
  private readonly checkpoints: number[] = [];
  private cursorIndex = 0;
  private cursorCluster: number;
  private verified: Promise<void> | null = null;

  constructor(layout: ExfatLayout, what: string, first: number, length: number, contiguous: boolean) {
    this.layout = layout;
    this.what = what;
    this.first = first;
    this.length = length;
    this.contiguous = contiguous;
    this.stride = Math.max(1024, Math.ceil(length / MAX_CHECKPOINTS));
    this.cursorCluster = first;
    if (length === 0) return;
    if (!isHeapCluster(layout, first)) throw corruptExfat(layout, what, `first cluster ${first} is not in the cluster heap (2-${layout.clusterCount + 1})`);
    if (contiguous && first + length - 1 > layout.clusterCount + 1) {
      throw corruptExfat(layout, what, `${length} contiguous clusters from cluster ${first} run past the cluster heap (last cluster ${layout.clusterCount + 1})`);
    }
  }

  /** The volume runs holding clusters [from, from + count) of the chain, merged where they are adjacent. */
  async runs(from: number, count: number): Promise<ClusterRun[]> {
    if (count <= 0) return [];
    if (from < 0 || from + count > this.length) throw new RangeError(`clusters ${from}+${count} outside a chain of ${this.length}`);
    if (this.contiguous) return [{ cluster: this.first + from, count }];
    await (this.verified ??= this.verify());
    let index: number;
    let cluster: number;
    const cp = Math.floor(from / this.stride);
    if (this.cursorIndex <= from && this.cursorIndex >= cp * this.stride) {
      index = this.cursorIndex;
      cluster = this.cursorCluster;
    } else {
      index = cp * this.stride;
      cluster = this.checkpoints[cp];
    }
    const fat = this.layout.fat;
    while (index < from) {
      const next = fat.entry(cluster);
      cluster = typeof next === 'number' ? next : await next;
      index++;
    }
    const runs: ClusterRun[] = [{ cluster, count: 1 }];
    for (let i = 1; i < count; i++) {
      const next = fat.entry(cluster);
      cluster = typeof next === 'number' ? next : await next;
      index++;
      const last = runs[runs.length - 1];
      if (cluster === last.cluster + last.count) last.count++;
      else runs.push({ cluster, count: 1 });
    }
    this.cursorIndex = index;
    this.cursorCluster = cluster;
    return runs;
  }

  /**
   * The whole walk, once: every link a heap cluster up to the length the size needs, checkpoints on the
   * way, then the end checked. FAT entries come synchronously from the FAT's cache between chunk reads.
   * Brent's tortoise rides along, so a loop is caught after a few times its own length, however long a
   * size a damaged entry claims.
   */
  private async verify(): Promise<void> {
    const fat = this.layout.fat;
    let cluster = this.first;
    let tortoise = cluster;
    let power = 1;
    let lambda = 0;
    this.checkpoints.push(cluster);
    for (let at = 1; at < this.length; at++) {
      let next = fat.entry(cluster);
      if (typeof next !== 'number') next = await next;
      if (!isHeapCluster(this.layout, next)) {
        let why: string;
        if (next === FAT_END_OF_CHAIN) why = `cluster chain ends after ${at} clusters but the size needs ${this.length}`;
        else if (next === FAT_BAD_CLUSTER) why = `cluster chain reaches a cluster marked bad after cluster ${cluster}`;
        else if (next === 0) why = `cluster chain reaches a free cluster after cluster ${cluster}`;
        else why = `FAT entry of cluster ${cluster} holds 0x${next.toString(16)}, not a cluster`;
        throw corruptExfat(this.layout, this.what, why);
      }
      if (next === tortoise) throw corruptExfat(this.layout, this.what, `cluster chain loops (cluster ${next} comes again after ${at} clusters)`);
      if (++lambda === power) {
        tortoise = next;
        power *= 2;
        lambda = 0;
      }
      if (at % this.stride === 0) this.checkpoints.push(next);
      cluster = next;
    }
    await this.checkEnd(cluster);
  }

  /** At the last cluster the size needs: the FAT entry there must end the chain (see the module comment). */
  private async checkEnd(last: number): Promise<void> {
    const fat = this.layout.fat;
    const f = async (c: number): Promise<number> => fat.entry(c);
    const x0 = await f(last);
    if (x0 === FAT_END_OF_CHAIN) return;
    if (!isHeapCluster(this.layout, x0)) {
      // A bad-cluster mark or garbage where the end should be: the data the size covers is all there.
      this.layout.warn(`exfat ${this.what}: the FAT entry after the last cluster holds 0x${x0.toString(16)}, not the end-of-chain mark`);
      return;
    }
    // Brent: the tortoise waits at powers of two while the hare runs; they meet only inside a loop, after
    // fewer than 4x the distinct clusters on the way (the bound only guards against a mistake here).
    let power = 1;
    let lambda = 1;
    let tortoise = x0;
    let hare = await f(x0);
    for (let steps = 0; steps <= 4 * (this.layout.clusterCount + 2); steps++) {
      if (!isHeapCluster(this.layout, hare)) {
        this.layout.warn(`exfat ${this.what}: the cluster chain continues past the ${this.length} clusters its size needs`);
        return;
      }
      if (hare === tortoise) break;
      if (power === lambda) {
        tortoise = hare;
        power *= 2;
        lambda = 0;
      }
      hare = await f(hare);
      lambda++;
    }
    throw corruptExfat(this.layout, this.what, `cluster chain loops (it does not end after the ${this.length} clusters its size needs)`);
  }
}

/**
 * The length of a chain whose size nothing states (the root directory, 7.4 has no stream extension for
 * it), walked to its end with every cluster remembered, bounded by `maxClusters`.
 */
export async function chainLength(layout: ExfatLayout, what: string, first: number, maxClusters: number): Promise<number> {
  if (!isHeapCluster(layout, first)) throw corruptExfat(layout, what, `first cluster ${first} is not in the cluster heap (2-${layout.clusterCount + 1})`);
  const seen = new Set<number>([first]);
  let cluster = first;
  for (;;) {
    let next = layout.fat.entry(cluster);
    if (typeof next !== 'number') next = await next;
    if (next === FAT_END_OF_CHAIN) return seen.size;
    if (!isHeapCluster(layout, next)) throw corruptExfat(layout, what, `FAT entry of cluster ${cluster} holds 0x${next.toString(16)}, neither a cluster nor the end of the chain`);
    if (seen.has(next)) throw corruptExfat(layout, what, `cluster chain loops back to cluster ${next}`);
    if (seen.size >= maxClusters) throw corruptExfat(layout, what, `cluster chain is longer than ${maxClusters} clusters`);
    seen.add(next);
    cluster = next;
  }
}
