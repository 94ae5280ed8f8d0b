// Guards against losing state without noticing. At start: refuse a Redis that persists
// nothing (unless allowed), and compare the epoch (a random id of this queue prefix's
// state) kept in Redis with the copy kept in object storage: when the store knows an
// epoch and Redis does not, Redis came back empty and every batch and file record is
// gone while their objects remain, so the coordinator refuses to start until an
// operator restores Redis or accepts the reset. While running, /readyz fails loudly
// when the epoch vanishes, or when Redis or the store stop answering.
import { BatchgenError, isBatchgenError, readiness, type Logger, type ObjectStore, type Readiness } from "@batchgen/core";
import type { Gauge } from "prom-client";
import type { CoordinatorConfig } from "./coordinator-config.js";

export interface StateProbe {
  connect(): Promise<void>;
  ping(): Promise<void>;
  persistence(): Promise<{ aof: boolean; save: string | null }>;
  epoch(): Promise<string | null>;
  createEpoch(id?: string): Promise<string>;
}

export interface StateGuardDeps {
  redis: StateProbe;
  objects: ObjectStore;
  config: CoordinatorConfig;
  logger: Logger;
  /** Set to 1 while Redis's epoch is missing or differs from the store's. */
  epochLost: Gauge;
}

export function epochKey(queuePrefix: string): string {
  return `epoch/${queuePrefix}`;
}

export class StateGuard {
  private epoch: string | null = null;

  constructor(private readonly deps: StateGuardDeps) {}

  async start(): Promise<void> {
    const { redis, config, logger } = this.deps;
    await redis.connect();
    const p = await redis.persistence();
    const ephemeral = !p.aof && p.save === "";
    if (ephemeral && !config.allowEphemeralRedis) {
      throw new BatchgenError(
        "failed_precondition",
        "refusing a Redis that persists nothing (appendonly no, no save rules): a restart of it loses every batch. " +
          "Turn on AOF (appendonly yes) or RDB snapshots, or pass --allow-ephemeral-redis",
        { param: "allowEphemeralRedis" },
      );
    }
    if (ephemeral) logger.warn("Redis persists nothing (--allow-ephemeral-redis): a restart of it loses every batch and file record");
    if (p.save === null && !p.aof) logger.warn("cannot read Redis's snapshot rules (CONFIG is disabled) and AOF is off: make sure it persists");
    this.epoch = await this.checkEpoch();
  }

  private async checkEpoch(): Promise<string> {
    const { redis, objects, config, logger } = this.deps;
    const key = epochKey(config.queuePrefix);
    const inStore = (await objects.head(key)) ? (await objects.getBytes(key)).toString("utf8").trim() : null;
    const inRedis = await redis.epoch();
    if (inStore !== null && inRedis !== inStore) {
      if (!config.acceptRedisReset) {
        this.deps.epochLost.set(1);
        throw new BatchgenError(
          "failed_precondition",
          `Redis lost its state: the store holds epoch ${inStore} of prefix ${config.queuePrefix} but Redis ` +
            `${inRedis === null ? "holds none" : `holds ${inRedis}`}. Batches and files recorded before are gone from Redis ` +
            "while their objects remain in the store. Restore Redis from its backup (AOF/RDB), or start once with " +
            "--accept-redis-reset to begin a new epoch (the old objects stay, unreachable through the API)",
        );
      }
      logger.error("Redis state reset accepted (--accept-redis-reset): records of the earlier epoch are gone", {
        store_epoch: inStore,
        redis_epoch: inRedis,
      });
    }
    // Redis's epoch is the one in force (another replica may have set it a moment ago).
    const epoch = inRedis ?? (await redis.createEpoch());
    if (inStore !== epoch) await objects.put(key, epoch);
    this.deps.epochLost.set(0);
    return epoch;
  }

  /** Ready: Redis answers, its epoch is the one this replica started with, and the store answers. */
  ready(): Promise<Readiness> {
    return readiness(async () => {
      const { redis, objects, config, logger } = this.deps;
      let inRedis: string | null;
      try {
        await redis.ping();
        inRedis = await redis.epoch();
      } catch (err) {
        return { ready: false, reason: `Redis does not answer: ${causeText(err)}` };
      }
      if (this.epoch !== null && inRedis !== this.epoch) {
        this.deps.epochLost.set(1);
        logger.error("Redis lost its state: the epoch key changed or vanished; records written before are gone", {
          expected: this.epoch,
          found: inRedis,
        });
        return { ready: false, reason: "Redis came back without this coordinator's state (epoch key missing); see the logs" };
      }
      try {
        await objects.head(epochKey(config.queuePrefix));
      } catch (err) {
        return { ready: false, reason: `the object store does not answer: ${causeText(err)}` };
      }
      return { ready: true };
    }, this.deps.config.readyTimeoutMs);
  }
}

function causeText(err: unknown): string {
  if (isBatchgenError(err) && err.cause instanceof Error) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}
