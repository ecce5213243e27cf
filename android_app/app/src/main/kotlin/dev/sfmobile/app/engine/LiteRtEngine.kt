package dev.sfmobile.app.engine

import android.content.Context
import android.os.Build
import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.BuiltinNpuAcceleratorProvider
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.Environment
import com.google.ai.edge.litert.LiteRtException
import com.google.ai.edge.litert.TensorBuffer
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
import dev.sfmobile.core.device.fitRows
import java.io.File

/**
 * The bundle's text encoder, UNet and one decoder (`decoder`, or `decoder_tile` when the Pipeline
 * decodes in tiles: ModelFiles.resolve decided which before loading, so the other is never compiled) as LiteRT
 * CompiledModels on one accelerator. Buffers are
 * created once per tensor name and reused by every call; shapes are the manifest's (static).
 */
class LiteRtEngine private constructor(
    private val environment: Environment,
    private val models: Map<String, CompiledModel>,
    private val inputs: Map<String, Map<String, TensorBuffer>>,
    private val outputs: Map<String, Map<String, TensorBuffer>>,
    private val outputShapes: Map<String, IntArray>,
    private val unetBatch: Int,
) : Engine {
    override fun encodeText(tokenIds: IntTensor): FloatTensor {
        input("text_encoder", ComponentIo.INPUT_IDS).writeInt(tokenIds.data)
        return run("text_encoder")
    }

    override fun predict(
        latents: FloatTensor,
        timestep: Float,
        text: FloatTensor,
        guidance: Float?,
    ): FloatTensor {
        for ((name, tensor) in ComponentIo.unetInputs(latents, timestep, text, guidance, unetBatch)) {
            input("unet", name).writeFloat(tensor.data)
        }
        return fitRows(run("unet"), latents.shape[0])
    }

    override fun decode(latents: FloatTensor): FloatTensor {
        if (TiledDecode.DECODER !in models) throw EngineException(NOT_LOADED)
        input("decoder", ComponentIo.LATENTS).writeFloat(latents.data)
        return run("decoder")
    }

    override fun decodeTile(latents: FloatTensor): FloatTensor {
        if (Manifest.DECODER_TILE !in models) return super.decodeTile(latents)
        input(Manifest.DECODER_TILE, ComponentIo.LATENTS).writeFloat(latents.data)
        return run(Manifest.DECODER_TILE)
    }

    override fun close() {
        (inputs.values + outputs.values).flatMap { it.values }.forEach { it.close() }
        models.values.forEach { it.close() }
        environment.close()
    }

    private fun input(
        component: String,
        name: String,
    ): TensorBuffer = inputs.getValue(component).getValue(name)

    private fun run(component: String): FloatTensor {
        val out = outputs.getValue(component)
        try {
            models.getValue(component).run(inputs.getValue(component), out)
            return FloatTensor(outputShapes.getValue(component), out.values.first().readFloat())
        } catch (e: LiteRtException) {
            throw EngineException("$component: LiteRT failed: ${e.message}")
        }
    }

    companion object {
        /** ModelFiles.resolve chose the tile decoder, so the full decoder was never loaded. */
        private const val NOT_LOADED = "decoder: not loaded (this engine was built to decode in tiles with decoder_tile)"

        private const val QUALCOMM_DISPATCH = "libLiteRtDispatch_Qualcomm.so"

        /** Compiles the components of [modelFiles] for [backend]'s accelerator; a failure closes what was made. */
        fun load(
            context: Context,
            bundle: Bundle,
            modelFiles: Map<String, String>,
            backend: Backend,
            bigCores: Int,
        ): LoadedEngine {
            val accelerator =
                when (backend) {
                    Backend.LITERT_CPU -> Accelerator.CPU
                    Backend.LITERT_GPU -> Accelerator.GPU
                    Backend.LITERT_NPU -> Accelerator.NPU
                    else -> throw IllegalArgumentException("${backend.id} is not a LiteRT backend")
                }
            if (accelerator == Accelerator.NPU) checkNpuLibraries(context)
            val environment =
                if (accelerator == Accelerator.NPU) {
                    Environment.create(context, BuiltinNpuAcceleratorProvider(context))
                } else {
                    Environment.create(context)
                }
            val models = LinkedHashMap<String, CompiledModel>()
            try {
                if (accelerator != Accelerator.CPU && accelerator !in environment.getAvailableAccelerators()) {
                    throw EngineException("${backend.id}: LiteRT finds no $accelerator on this phone (${socModel()})")
                }
                val options =
                    CompiledModel.Options(accelerator).apply {
                        when (backend) {
                            Backend.LITERT_CPU -> {
                                cpuOptions = CompiledModel.CpuOptions(numThreads = bigCores)
                            }

                            Backend.LITERT_NPU -> {
                                qualcommOptions =
                                    CompiledModel.QualcommOptions(
                                        htpPerformanceMode = CompiledModel.QualcommOptions.HtpPerformanceMode.BURST,
                                    )
                            }

                            else -> {}
                        }
                    }
                for ((component, path) in modelFiles) {
                    val file = File(bundle.dir, path)
                    models[component] =
                        try {
                            CompiledModel.create(file.path, options, environment)
                        } catch (e: LiteRtException) {
                            throw EngineException("${backend.id}: LiteRT could not compile $file: ${e.message}")
                        }
                }
                val manifest = bundle.manifest
                val inputs =
                    models.mapValues { (component, model) ->
                        manifest.component(component).inputs.associate { it.name to model.createInputBuffer(it.name) }
                    }
                val outputs =
                    models.mapValues { (component, model) ->
                        manifest.component(component).outputs.associate { it.name to model.createOutputBuffer(it.name) }
                    }
                val shapes =
                    models.keys.associateWith {
                        manifest
                            .component(it)
                            .outputs
                            .first()
                            .shape
                            .toIntArray()
                    }
                val engine = LiteRtEngine(environment, models, inputs, outputs, shapes, ComponentIo.unetBatch(manifest))
                return LoadedEngine(engine, backend.accelerator, BuildConfig.LITERT_VERSION)
            } catch (e: Throwable) {
                models.values.forEach { it.close() }
                environment.close()
                throw e
            }
        }

        /** LiteRT's Qualcomm NPU needs its dispatch library packaged into the APK (README.md, "LiteRT NPU"). */
        private fun checkNpuLibraries(context: Context) {
            if (!File(context.applicationInfo.nativeLibraryDir, QUALCOMM_DISPATCH).isFile) {
                throw EngineException(
                    "litert-npu: this APK has no $QUALCOMM_DISPATCH; add LiteRT's Qualcomm NPU libraries " +
                        "(README.md, LiteRT NPU) or use ort-qnn",
                )
            }
        }

        private fun socModel(): String = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) Build.SOC_MODEL else "SoC unknown"
    }
}
