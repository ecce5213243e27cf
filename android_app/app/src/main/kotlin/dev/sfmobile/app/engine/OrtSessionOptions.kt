package dev.sfmobile.app.engine

import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtEpDevice
import ai.onnxruntime.OrtSession.SessionOptions
import ai.onnxruntime.qnnpluginep.getEpName
import ai.onnxruntime.qnnpluginep.getLibraryPath
import dev.sfmobile.core.EngineException
import dev.sfmobile.core.Manifest
import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.QnnSocs

/** ONNX Runtime session options for each ONNX backend. */
internal object OrtSessionOptions {
    /**
     * The QNN execution provider's options for every QNN bundle: the Hexagon HTP backend at its
     * fastest clock, and the most thorough graph finalization. The bundle's SoC (`htp_arch`,
     * `soc_model`) and fp16 precision are added per component by [QnnSocs.htpOptions].
     */
    val QNN_HTP =
        mapOf(
            "backend_type" to "htp",
            "htp_performance_mode" to "burst",
            "htp_graph_finalization_optimization_mode" to "3",
        )

    private const val QNN_REGISTRATION = "QNNExecutionProvider"

    @Volatile private var qnnRegistered = false

    /**
     * - ort-cpu: XNNPACK with one thread per big core, ONNX Runtime's own pool at one thread
     *   without spinning (onnxruntime.ai's XNNPACK guidance);
     * - ort-nnapi: the NNAPI provider, CPU fallback allowed (NNAPI is deprecated from Android 15);
     * - ort-qnn: Qualcomm's plugin EP on the HTP opening [component]'s EPContext model of a QNN
     *   bundle, with `session.disable_cpu_ep_fallback=1` when the manifest's placement has every
     *   node on the HTP, so a context that would not run entirely on the NPU fails loudly instead
     *   of running slowly (export/README.md "QNN bundles").
     */
    fun create(
        env: OrtEnvironment,
        backend: Backend,
        bigCores: Int,
        manifest: Manifest,
        component: String,
    ): SessionOptions {
        val options = SessionOptions()
        try {
            options.setOptimizationLevel(SessionOptions.OptLevel.ALL_OPT)
            when (backend) {
                Backend.ORT_CPU -> {
                    options.setIntraOpNumThreads(1)
                    options.addConfigEntry("session.intra_op.allow_spinning", "0")
                    options.addXnnpack(mapOf("intra_op_num_threads" to bigCores.toString()))
                }

                Backend.ORT_NNAPI -> {
                    options.addNnapi()
                }

                Backend.ORT_QNN -> {
                    options.addExecutionProvider(qnnDevices(env), QNN_HTP + QnnSocs.htpOptions(manifest, component))
                    if (manifest.qnn?.htpOnly == true) options.addConfigEntry("session.disable_cpu_ep_fallback", "1")
                }

                else -> {
                    throw IllegalArgumentException("${backend.id} is not an ONNX Runtime backend")
                }
            }
            return options
        } catch (e: Throwable) {
            options.close()
            throw e
        }
    }

    /** The QNN plugin's devices, registering the plugin library once per process. */
    @Synchronized
    private fun qnnDevices(env: OrtEnvironment): List<OrtEpDevice> {
        if (!qnnRegistered) {
            env.registerExecutionProviderLibrary(QNN_REGISTRATION, getLibraryPath())
            qnnRegistered = true
        }
        return env.epDevices.filter { it.epName == getEpName() }.ifEmpty {
            throw EngineException(
                "ort-qnn: the QNN execution provider found no Qualcomm HTP on this phone " +
                    "(a Snapdragon 8 Gen 2 / SM8550 or later is expected); use ort-cpu",
            )
        }
    }
}
