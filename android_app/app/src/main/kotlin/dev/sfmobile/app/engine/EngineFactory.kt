package dev.sfmobile.app.engine

import android.content.Context
import dev.sfmobile.core.Bundle
import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.CpuTopology
import dev.sfmobile.core.device.InferenceRuntime
import dev.sfmobile.core.device.LoadedEngine

/** Loads a bundle on a backend: ONNX Runtime or LiteRT, as the backend's runtime says. */
object EngineFactory {
    /** [modelFiles]: component to bundle-relative file, from ModelFiles.resolve (which checked the bundle). */
    fun load(
        context: Context,
        bundle: Bundle,
        backend: Backend,
        modelFiles: Map<String, String>,
    ): LoadedEngine {
        val bigCores = CpuTopology.bigCoreCount(fallback = Runtime.getRuntime().availableProcessors() / 2)
        return when (backend.runtime) {
            InferenceRuntime.ONNX_RUNTIME -> OrtEngine.load(bundle, modelFiles, backend, bigCores)
            InferenceRuntime.LITERT -> LiteRtEngine.load(context, bundle, modelFiles, backend, bigCores)
        }
    }
}
