/**
 * After a crash (a broker that went away, a coordinator that moved), kafkajs builds a new
 * ConsumerGroup that joins with no member id, as a new member. The coordinator still counts the
 * old member (a group is reloaded with its members when its coordinator restarts) and holds the
 * rebalance until that member's session times out: every partition stalls for a session timeout
 * after the broker is back. Here a consumer rejoins with the member id it last had, so the
 * coordinator lets it straight back in; a member id the coordinator no longer knows is answered
 * UNKNOWN_MEMBER_ID, after which kafkajs joins as a new member (its own handling).
 *
 * The member id is remembered per kafkajs cluster (one per consumer, kept across kafkajs'
 * restarts of it) and forgotten when the consumer leaves the group. A consumer built to replace a
 * crashed one (a cluster of its own) is handed the old id with `rejoinAs`.
 */
interface ConsumerGroupLike {
  readonly cluster: object
  readonly groupId: string
  memberId: string | null
  joinAndSync(): Promise<unknown>
  leave(): Promise<void>
}

const lastMember = new WeakMap<object, string>()
/** One-shot member ids for the next consumer of a group to join without one (`rejoinAs`). */
const handedOver = new Map<string, string>()

/**
 * The next consumer of `groupId` in this process that joins as a new member joins as `memberId`
 * instead: for a consumer that replaces a crashed one of the same group.
 */
export const rejoinAs = (groupId: string, memberId: string): void => {
  handedOver.set(groupId, memberId)
}

const INSTALLED = Symbol.for("@orbit/kafka/rejoinAsSameMember")

export const installRejoinAsSameMember = (ConsumerGroup: { prototype: ConsumerGroupLike }): void => {
  const proto = ConsumerGroup.prototype as ConsumerGroupLike & { [INSTALLED]?: true }
  if (proto[INSTALLED]) return
  const joinAndSync = proto.joinAndSync
  const leave = proto.leave
  proto.joinAndSync = async function(this: ConsumerGroupLike) {
    if (!this.memberId) {
      const handed = handedOver.get(this.groupId)
      handedOver.delete(this.groupId)
      this.memberId = lastMember.get(this.cluster) ?? handed ?? null
    }
    const result = await joinAndSync.call(this)
    if (this.memberId) lastMember.set(this.cluster, this.memberId)
    return result
  }
  proto.leave = async function(this: ConsumerGroupLike) {
    await leave.call(this)
    lastMember.delete(this.cluster)
  }
  proto[INSTALLED] = true
}
