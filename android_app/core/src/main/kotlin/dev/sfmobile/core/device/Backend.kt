package dev.sfmobile.core.device

import dev.sfmobile.core.InputException

/** The inference runtime a [Backend] runs on; each reads one bundle format. */
enum class InferenceRuntime(
    val bundleFormat: String,
) {
    /** ONNX Runtime Android (`com.microsoft.onnxruntime:onnxruntime-android`): `.onnx` bundles. */
    ONNX_RUNTIME("onnx"),

    /** LiteRT's CompiledModel API (`com.google.ai.edge.litert:litert`): `.tflite` bundles. */
    LITERT("tflite"),
}

/**
 * A runtime and accelerator pair the app can run a bundle on. [id] is the name used in the UI,
 * in the benchmark intent (`--es backend ort-qnn`) and in benchmark-result.schema.json;
 * [accelerator] is what runs the graphs, as the benchmark JSON records it.
 */
enum class Backend(
    val id: String,
    val runtime: InferenceRuntime,
    val accelerator: String,
    val label: String,
) {
    ORT_CPU("ort-cpu", InferenceRuntime.ONNX_RUNTIME, "xnnpack", "ONNX Runtime, CPU (XNNPACK)"),
    ORT_NNAPI("ort-nnapi", InferenceRuntime.ONNX_RUNTIME, "nnapi", "ONNX Runtime, NNAPI (deprecated from Android 15)"),
    ORT_QNN("ort-qnn", InferenceRuntime.ONNX_RUNTIME, "htp", "ONNX Runtime, Qualcomm NPU (QNN HTP)"),
    LITERT_CPU("litert-cpu", InferenceRuntime.LITERT, "xnnpack", "LiteRT, CPU (XNNPACK)"),
    LITERT_GPU("litert-gpu", InferenceRuntime.LITERT, "gpu", "LiteRT, GPU"),
    LITERT_NPU("litert-npu", InferenceRuntime.LITERT, "npu", "LiteRT, NPU"),
    ;

    /**
     * The bundle format this backend runs: its runtime's, except ort-qnn, which runs QNN bundles
     * (EPContext models precompiled for one Snapdragon SoC, `sfmobile export --format qnn`).
     */
    val bundleFormat: String get() = if (this == ORT_QNN) QNN_FORMAT else runtime.bundleFormat

    /** NNAPI is deprecated from Android 15 (API 35): offered there, never the default. */
    fun isDeprecatedOn(sdkInt: Int): Boolean = this == ORT_NNAPI && sdkInt >= ANDROID_15

    companion object {
        private const val ANDROID_15 = 35
        private const val QNN_FORMAT = "qnn"

        /** The backend of [id] (`ort-qnn`), or InputException listing the valid names. */
        fun parse(id: String): Backend =
            entries.firstOrNull { it.id == id.trim() }
                ?: throw InputException(
                    "unknown backend '$id'; choose one of ${entries.joinToString(", ") { it.id }}",
                )

        /** The backends that can run a bundle whose components are in [bundleFormat] (onnx, tflite or qnn). */
        fun forFormat(bundleFormat: String): List<Backend> = entries.filter { it.bundleFormat == bundleFormat }

        /**
         * The backend chosen when the user has not picked one: the CPU of the bundle's runtime,
         * which every arm64 phone has (accelerators are opt-in because support varies by chip);
         * a QNN bundle runs on ort-qnn only.
         */
        fun defaultFor(bundleFormat: String): Backend =
            forFormat(bundleFormat).firstOrNull()
                ?: throw InputException("no backend runs '$bundleFormat' bundles; the app runs onnx, tflite and qnn")
    }
}
