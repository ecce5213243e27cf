package dev.sfmobile.core.device

import dev.sfmobile.core.Engine

/**
 * An [Engine] with what a benchmark reports about it: the runtime's version and the accelerator
 * that runs its graphs (`xnnpack`, `nnapi`, `htp`, `gpu`, `npu`). Closing it closes the engine.
 */
class LoadedEngine(
    val engine: Engine,
    val accelerator: String,
    val runtimeVersion: String? = null,
) : AutoCloseable {
    override fun close() = engine.close()
}
