package dev.sfmobile.app.engine

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtException
import ai.onnxruntime.OrtSession
import android.os.Build
import dev.sfmobile.app.BuildConfig
import dev.sfmobile.core.Bundle
import dev.sfmobile.core.Engine
import dev.sfmobile.core.EngineException
import dev.sfmobile.core.FloatTensor
import dev.sfmobile.core.IntTensor
import dev.sfmobile.core.Manifest
import dev.sfmobile.core.TiledDecode
import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.ComponentIo
import dev.sfmobile.core.device.LoadedEngine
import dev.sfmobile.core.device.QnnRuntime
import dev.sfmobile.core.device.QnnSocs
import dev.sfmobile.core.device.fitRows
import java.io.File
import java.nio.FloatBuffer
import java.nio.IntBuffer

/**
 * The bundle's text encoder, UNet and one decoder (`decoder`, or `decoder_tile` when the Pipeline
 * decodes in tiles: ModelFiles.resolve decided which before loading) as ONNX Runtime
 * sessions ([OrtSessionOptions] picks the execution provider). Inputs are bound by the names [ComponentIo] lists; the UNet's static batch
 * is filled by repeating rows and its output cut back to the rows asked for.
 */
class OrtEngine private constructor(
    private val env: OrtEnvironment,
    private val sessions: Map<String, OrtSession>,
    private val outputNames: Map<String, String>,
    private val unetBatch: Int,
) : Engine {
    override fun encodeText(tokenIds: IntTensor): FloatTensor =
        OnnxTensor.createTensor(env, IntBuffer.wrap(tokenIds.data), tokenIds.shape.toLongArray()).use { ids ->
            run("text_encoder", mapOf(ComponentIo.INPUT_IDS to ids))
        }

    override fun predict(
        latents: FloatTensor,
        timestep: Float,
        text: FloatTensor,
        guidance: Float?,
    ): FloatTensor {
        val inputs = ComponentIo.unetInputs(latents, timestep, text, guidance, unetBatch).mapValues { tensor(it.value) }
        try {
            return fitRows(run("unet", inputs), latents.shape[0])
        } finally {
            inputs.values.forEach { it.close() }
        }
    }

    override fun decode(latents: FloatTensor): FloatTensor {
        if (TiledDecode.DECODER !in sessions) throw EngineException(NOT_LOADED)
        return tensor(latents).use { run(TiledDecode.DECODER, mapOf(ComponentIo.LATENTS to it)) }
    }

    override fun decodeTile(latents: FloatTensor): FloatTensor {
        if (Manifest.DECODER_TILE !in sessions) return super.decodeTile(latents)
        return tensor(latents).use { run(Manifest.DECODER_TILE, mapOf(ComponentIo.LATENTS to it)) }
    }

    override fun close() {
        sessions.values.forEach { it.close() }
    }

    private fun tensor(value: FloatTensor): OnnxTensor =
        OnnxTensor.createTensor(env, FloatBuffer.wrap(value.data), value.shape.toLongArray())

    private fun run(
        component: String,
        inputs: Map<String, OnnxTensor>,
    ): FloatTensor {
        val name = outputNames.getValue(component)
        return try {
            sessions.getValue(component).run(inputs).use { result ->
                val output =
                    result.get(name).orElse(null) as? OnnxTensor
                        ?: throw EngineException("$component: ONNX Runtime returned no float tensor '$name'")
                val buffer = output.floatBuffer
                FloatTensor(
                    output.info.shape
                        .map { it.toInt() }
                        .toIntArray(),
                    FloatArray(buffer.remaining()).also { buffer.get(it) },
                )
            }
        } catch (e: OrtException) {
            throw EngineException("$component: ONNX Runtime failed: ${e.message}")
        }
    }

    companion object {
        /** ModelFiles.resolve chose the tile decoder, so the full decoder was never loaded. */
        private const val NOT_LOADED = "decoder: not loaded (this engine was built to decode in tiles with decoder_tile)"

        /**
         * Creates one session per component of [modelFiles] (bundle-relative paths chosen by
         * ModelFiles.resolve: for ort-qnn, a QNN bundle's EPContext models, after
         * QnnSocs.checkDevice refused a bundle compiled for another SoC and QnnRuntime.checkContexts
         * one compiled by another QNN release than the APK's qnn-runtime). A failure closes the
         * sessions already made and names the file.
         */
        fun load(
            bundle: Bundle,
            modelFiles: Map<String, String>,
            backend: Backend,
            bigCores: Int,
        ): LoadedEngine {
            if (backend == Backend.ORT_QNN) {
                QnnSocs.checkDevice(bundle.manifest, deviceSoc())
                QnnRuntime.checkContexts(bundle.manifest, BuildConfig.QNN_RUNTIME_VERSION)
            }
            val env = OrtEnvironment.getEnvironment()
            val sessions = LinkedHashMap<String, OrtSession>()
            try {
                for ((component, path) in modelFiles) {
                    val file = File(bundle.dir, path)
                    OrtSessionOptions.create(env, backend, bigCores, bundle.manifest, component).use { options ->
                        sessions[component] =
                            try {
                                env.createSession(file.path, options)
                            } catch (e: OrtException) {
                                throw EngineException("${backend.id}: ONNX Runtime could not load $file: ${e.message}")
                            }
                    }
                }
            } catch (e: Throwable) {
                sessions.values.forEach { it.close() }
                throw e
            }
            val outputs =
                modelFiles.keys.associateWith {
                    bundle.manifest
                        .component(it)
                        .outputs
                        .first()
                        .name
                }
            val engine = OrtEngine(env, sessions, outputs, ComponentIo.unetBatch(bundle.manifest))
            return LoadedEngine(engine, backend.accelerator, env.version)
        }

        /** The phone's SoC (Build.SOC_MODEL, API 31+), blank before Android 12. */
        private fun deviceSoc(): String = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) Build.SOC_MODEL else ""

        private fun IntArray.toLongArray() = LongArray(size) { this[it].toLong() }
    }
}
