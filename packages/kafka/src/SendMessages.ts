/**
 * kafkajs' `sendMessages` (producer/sendMessages.js, 2.2.4) with its retry fixed, so that a send
 * that resolves has written every one of its records.
 *
 * A send is one produce request per partition leader. kafkajs keeps the answers of a send per
 * broker across its retries and, on a retry, sends only to the brokers without one. When a leader
 * dies mid-send, the retry looks its partitions up again in fresh metadata: where the new leader is
 * a broker that had already answered for partitions of its own, it is skipped, those records are
 * never sent, and the send resolves as if they were written (kafkajs issue #1303, open; seen as
 * deliveries missing after `kill -9` of one of three brokers in test/e2e/cluster.test.ts). kafkajs
 * also skips, silently, a partition the metadata has no entry for.
 *
 * Here the answers are kept per topic-partition: each attempt sends the partitions still without
 * one to their current leaders, and fails (to be retried after a metadata refresh) when one has no
 * leader. Records are assigned to partitions once, at the first attempt that has the topic's
 * metadata, so a record already written is never assigned elsewhere on a retry. Every request of
 * an attempt settles before the next attempt decides what is left. Everything else (sequence
 * numbers of the idempotent producer, transactions, which errors refresh metadata, the logs) is
 * kafkajs' own. Installed by `KafkajsPatch.ts`; test/e2e/cluster.test.ts pins it on a real cluster.
 */

interface Broker {
  readonly nodeId: number
  produce(request: Record<string, unknown>): Promise<unknown>
}

interface Cluster {
  refreshMetadataIfNecessary(): Promise<void>
  refreshMetadata(): Promise<void>
  addMultipleTargetTopics(topics: ReadonlyArray<string>): Promise<void>
  findTopicPartitionMetadata(topic: string): ReadonlyArray<unknown>
  findLeaderForPartitions(topic: string, partitions: ReadonlyArray<string>): Record<string, Array<number>>
  findBroker(query: { nodeId: string }): Promise<Broker>
  removeBroker(query: { host: string; port: number }): void
  isConnected(): boolean
  connect(): Promise<void>
}

interface EosManager {
  acquireBrokerLock(broker: Broker): Promise<void>
  releaseBrokerLock(broker: Broker): Promise<void>
  isTransactional(): boolean
  addPartitionsToTransaction(topicData: ReadonlyArray<TopicData>): Promise<void>
  getSequence(topic: string, partition: number): number
  updateSequence(topic: string, partition: number, increment: number): void
  getTransactionalId(): string
  getProducerId(): number
  getProducerEpoch(): number
}

interface Logger {
  debug(message: string, extra?: object): void
  error(message: string, extra?: object): void
}

type Retrier = <A>(f: (bail: (error: unknown) => never, retryCount: number, retryTime: number) => Promise<A>) => Promise<A>

interface TopicData {
  readonly topic: string
  readonly partitions: Array<{ partition: number; messages: ReadonlyArray<unknown>; firstSequence?: number }>
}

/** One partition's answer, as kafkajs' `responseSerializer` gives it. */
interface PartitionAnswer {
  readonly topicName: string
  readonly partition: number
}

interface KafkaError {
  readonly name: string
  readonly message: string
  readonly retriable?: boolean
  readonly host: string
  readonly port: number
}

/** What the replacement takes from kafkajs itself. */
export interface KafkajsParts {
  readonly groupMessagesPerPartition: (input: {
    topic: string
    partitionMetadata: ReadonlyArray<unknown>
    messages: ReadonlyArray<unknown>
    partitioner: unknown
  }) => Record<number, ReadonlyArray<unknown>>
  readonly responseSerializer: (response: unknown) => ReadonlyArray<PartitionAnswer>
  readonly staleMetadata: (error: unknown) => boolean
  readonly KafkaJSMetadataNotLoaded: new(message: string) => Error
}

/** The module's export: `createSendMessages(deps)(request)`, as messageProducer.js calls it. */
export const makeCreateSendMessages = (kafkajs: KafkajsParts) =>
({ logger, cluster, partitioner, eosManager, retrier }: {
  logger: Logger
  cluster: Cluster
  partitioner: unknown
  eosManager: EosManager
  retrier: Retrier
}) =>
async ({ acks, timeout, compression, topicMessages }: {
  acks: number
  timeout: number
  compression: number
  topicMessages: ReadonlyArray<{ topic: string; messages: ReadonlyArray<unknown> }>
}): Promise<Array<PartitionAnswer>> => {
  /** Per `topic|partition` written: its answer (null with acks 0, which has none). */
  const answered = new Map<string, PartitionAnswer | null>()
  const assigned = new Map<string, Record<number, ReadonlyArray<unknown>>>()
  const keyOf = (topic: string, partition: number) => `${topic}|${partition}`

  const produceTo = async (broker: Broker, topicData: ReadonlyArray<TopicData>) => {
    await eosManager.acquireBrokerLock(broker)
    try {
      if (eosManager.isTransactional()) await eosManager.addPartitionsToTransaction(topicData)
      for (const { topic, partitions } of topicData) {
        for (const entry of partitions) {
          entry.firstSequence = eosManager.getSequence(topic, entry.partition)
          eosManager.updateSequence(topic, entry.partition, entry.messages.length)
        }
      }
      let response: unknown
      try {
        response = await broker.produce({
          transactionalId: eosManager.isTransactional() ? eosManager.getTransactionalId() : undefined,
          producerId: eosManager.getProducerId(),
          producerEpoch: eosManager.getProducerEpoch(),
          acks,
          timeout,
          compression,
          topicData
        })
      } catch (error) {
        for (const { topic, partitions } of topicData) {
          for (const entry of partitions) eosManager.updateSequence(topic, entry.partition, -entry.messages.length)
        }
        throw error
      }
      if (acks === 0) {
        for (const { topic, partitions } of topicData) for (const { partition } of partitions) answered.set(keyOf(topic, partition), null)
      } else {
        for (const answer of kafkajs.responseSerializer(response)) answered.set(keyOf(answer.topicName, answer.partition), answer)
      }
    } finally {
      await eosManager.releaseBrokerLock(broker)
    }
  }

  /** One attempt: every partition without an answer, to its current leader. */
  const attempt = async () => {
    await cluster.refreshMetadataIfNecessary()
    const perBroker = new Map<Broker, Array<TopicData>>()
    for (const { topic, messages } of topicMessages) {
      let messagesPerPartition = assigned.get(topic)
      if (messagesPerPartition === undefined) {
        const partitionMetadata = cluster.findTopicPartitionMetadata(topic)
        if (partitionMetadata.length === 0) {
          logger.debug("Producing to topic without metadata", { topic })
          throw new kafkajs.KafkaJSMetadataNotLoaded("Producing to topic without metadata")
        }
        messagesPerPartition = kafkajs.groupMessagesPerPartition({ topic, partitionMetadata, messages, partitioner })
        assigned.set(topic, messagesPerPartition)
      }
      const unanswered = Object.keys(messagesPerPartition).filter((p) => !answered.has(keyOf(topic, Number(p))))
      if (unanswered.length === 0) continue
      const perLeader = cluster.findLeaderForPartitions(topic, unanswered)
      const led = Object.values(perLeader).reduce((n, partitions) => n + partitions.length, 0)
      if (led < unanswered.length) {
        throw new kafkajs.KafkaJSMetadataNotLoaded(`Producing to partitions of ${topic} that the metadata does not list`)
      }
      for (const [nodeId, partitions] of Object.entries(perLeader)) {
        const broker = await cluster.findBroker({ nodeId })
        let topicData = perBroker.get(broker)
        if (topicData === undefined) perBroker.set(broker, topicData = [])
        topicData.push({
          topic,
          partitions: partitions.map((partition) => ({ partition, messages: messagesPerPartition[partition]! }))
        })
      }
    }
    const settled = await Promise.allSettled(Array.from(perBroker, ([broker, topicData]) => produceTo(broker, topicData)))
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected")
    if (failed !== undefined) throw failed.reason
    return [...answered.values()].filter((answer): answer is PartitionAnswer => answer !== null)
  }

  return retrier(async (bail, retryCount, retryTime) => {
    await cluster.addMultipleTargetTopics(topicMessages.map(({ topic }) => topic))
    try {
      return await attempt()
    } catch (caught) {
      const e = caught as KafkaError
      if (e.name === "KafkaJSConnectionClosedError") cluster.removeBroker({ host: e.host, port: e.port })
      if (!cluster.isConnected()) {
        logger.debug(`Cluster has disconnected, reconnecting: ${e.message}`, { retryCount, retryTime })
        await cluster.connect()
        await cluster.refreshMetadata()
        throw e
      }
      // The metadata may be stale: a leader moved, or the topic gained partitions.
      if (
        kafkajs.staleMetadata(e) ||
        e.name === "KafkaJSMetadataNotLoaded" ||
        e.name === "KafkaJSConnectionError" ||
        e.name === "KafkaJSConnectionClosedError" ||
        (e.name === "KafkaJSProtocolError" && e.retriable)
      ) {
        logger.error(`Failed to send messages: ${e.message}`, { retryCount, retryTime })
        await cluster.refreshMetadata()
        throw e
      }
      logger.error(`${e.message}`, { retryCount, retryTime })
      if (e.retriable) throw e
      return bail(e)
    }
  })
}
