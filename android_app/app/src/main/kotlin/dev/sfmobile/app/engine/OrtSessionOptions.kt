package dev.sfmobile.app.engine

import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtEpDevice
import ai.onnxruntime.OrtSession.SessionOptions
import ai.onnxruntime.qnnpluginep.getEpName
import ai.onnxruntime.qnnpluginep.getLibraryPath
import dev.sfmobile.core.EngineException
import dev.sfmobile.core.device.Backend

/** ONNX Runtime session options for each ONNX backend. */
internal object OrtSessionOptions {
    /**
     * The QNN execution provider's options: the Hexagon HTP backend at its fastest clock, and the
     * most thorough graph finalization (slower first load of an uncompiled model, faster runs).
     * fp32 graphs run in fp16 on the HTP (`enable_htp_fp16_precision` is 1 by default).
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
     * - ort-qnn: Qualcomm's plugin EP on the HTP, with `session.disable_cpu_ep_fallback=1` so a
     *   graph that would not run entirely on the NPU fails loudly instead of running slowly.
     */
    fun create(
        env: OrtEnvironment,
        backend: Backend,
        bigCores: Int,
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
                    options.addExecutionProvider(qnnDevices(env), QNN_HTP)
                    options.addConfigEntry("session.disable_cpu_ep_fallback", "1")
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
