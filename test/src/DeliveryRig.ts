import { type HttpsReceiver, makeSelfSignedCert, type SelfSignedCert, startHttpsReceiver } from "./HttpsReceiver.ts"
import { type Platform, startPlatform } from "./Platform.ts"

export interface DeliveryRig {
  readonly tls: SelfSignedCert
  readonly receiver: HttpsReceiver
  readonly platform: Platform
  /** Stops the platform, then the receiver, and removes the certificate files. */
  close(): Promise<void>
}

/**
 * What a delivery test stands on: a real HTTPS receiver on loopback with a self-signed certificate,
 * and the three services, whose dispatcher may reach it (127.0.0.0/8 opened, the receiver's CA
 * trusted: explicit opt-ins, as an operator would make them for local testing). `env` adds or
 * overrides settings of every service; `options.brokers` points them at another Kafka (a test's own).
 */
export const startDeliveryRig = async (
  env: Record<string, string> = {},
  options: { readonly brokers?: ReadonlyArray<string> } = {}
): Promise<DeliveryRig> => {
  const tls = makeSelfSignedCert()
  const receiver = await startHttpsReceiver(tls)
  try {
    const platform = await startPlatform({
      services: ["projection", "registration", "dispatcher"],
      ...(options.brokers === undefined ? {} : { brokers: options.brokers }),
      env: { ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8", ORBIT_EXTRA_CA_FILE: tls.caFile, ...env }
    })
    const close = async () => {
      await platform.close()
      await receiver.close()
      tls.cleanup()
    }
    return { tls, receiver, platform, close }
  } catch (error) {
    await receiver.close()
    tls.cleanup()
    throw error
  }
}
