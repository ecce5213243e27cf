package dev.sfmobile.core.device

import dev.sfmobile.core.BundleException
import dev.sfmobile.core.Manifest

/**
 * A QNN bundle whose context binaries were compiled by another QNN SDK release than the QNN
 * runtime the app carries: [compiled] is the manifest's `qnn.qnn_sdk`, [runtime] the app's.
 */
class QnnSdkMismatchException(
    val compiled: String,
    val runtime: String,
    message: String,
) : BundleException(message)

/**
 * The QNN runtime check the phone makes before opening a QNN bundle's contexts: the QNN SDK that
 * compiled them (the manifest's `qnn.qnn_sdk`, e.g. `v2.51.0.260929181845`) and the app's QNN
 * runtime (`com.qualcomm.qti:qnn-runtime`, e.g. `2.51.0`) must be the same major.minor release.
 *
 * Why major.minor: a context binary is QNN's serialised graph, and QNN documents no compatibility
 * of that format across releases (its API revision history promises API and ABI compatibility for
 * applications, not for stored binaries; QnnContext_createFromBinary has an error of its own for
 * "incompatible version of the binary"). Qualcomm pins each onnxruntime-qnn release to one QAIRT
 * minor (2.7.0: QAIRT 2.51.0) and its own Android test app swaps patch releases of that minor
 * (qnn-runtime 2.45.40 for 2.45.0), so the patch and the build stamp may differ, the minor may
 * not. Refusing here names both versions; QNN's own failure would be a numeric error at load.
 */
object QnnRuntime {
    private val VERSION = Regex("""v?(\d+)\.(\d+)(?:\.\d+)*""")

    /**
     * Refuse [manifest]'s contexts when they were compiled for another QNN major.minor than
     * [runtimeVersion] (the app's qnn-runtime version, e.g. from BuildConfig). Returns the
     * compiled version. [runtimeVersion] must be a version: a malformed one is the app's bug.
     */
    fun checkContexts(
        manifest: Manifest,
        runtimeVersion: String,
    ): String {
        val compiled =
            manifest.qnn?.qnnSdk ?: throw BundleException("the manifest has no qnn section (not a QNN bundle; export --format qnn)")
        val runtime = requireNotNull(majorMinor(runtimeVersion)) { "QNN runtime version '$runtimeVersion' is not like 2.51.0" }
        val bundle =
            majorMinor(compiled) ?: throw QnnSdkMismatchException(
                compiled,
                runtimeVersion,
                "qnn.qnn_sdk '$compiled' is not a QNN SDK version, so the contexts cannot be matched to this app's " +
                    "QNN runtime $runtimeVersion: export the bundle again",
            )
        if (bundle != runtime) {
            val (major, minor) = runtime
            throw QnnSdkMismatchException(
                compiled,
                runtimeVersion,
                "bundle contexts compiled with QNN SDK $compiled, but this app's QNN runtime is $runtimeVersion: " +
                    "export the bundle again with a QNN SDK $major.$minor.x (an onnxruntime-qnn built on it), " +
                    "or build the app with qnn-runtime ${bundle.first}.${bundle.second}.x",
            )
        }
        return compiled
    }

    /** (major, minor) of `2.51.0`, `v2.51.0.260929181845` or `2.51`; null for anything else. */
    fun majorMinor(version: String): Pair<Int, Int>? =
        VERSION.matchEntire(version.trim())?.let { match ->
            val (major, minor) = match.destructured
            major.toIntOrNull()?.let { m -> minor.toIntOrNull()?.let { m to it } }
        }
}
