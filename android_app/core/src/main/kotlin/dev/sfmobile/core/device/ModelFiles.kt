package dev.sfmobile.core.device

import dev.sfmobile.core.BundleException
import dev.sfmobile.core.Manifest

/**
 * Which file of each component a backend loads, after checking that it can load the bundle at
 * all: the components' tensors must be named as [ComponentIo] binds them, their format must be
 * the backend's runtime's, and every input and output float32 or
 * int32 (ONNX Runtime's Java API has no uint16 tensors, LiteRT's Kotlin buffers take float and
 * int; quantized graphs quantize at their edge inside the graph).
 *
 * For `ort-qnn` a precompiled QNN context (`<model>_ctx.onnx`, written by ONNX Runtime with
 * `ep.context_enable=1` beside its `.bin`) is preferred when the bundle lists one, so the phone
 * skips the HTP graph compilation; other backends cannot run a context file and refuse a bundle
 * whose model file is one.
 */
object ModelFiles {
    private val TENSOR_DTYPES = setOf("float32", "int32")
    private const val CONTEXT_SUFFIX = "_ctx.onnx"

    /** Component name to the bundle-relative path [backend] loads; BundleException names what stops it. */
    fun resolve(
        manifest: Manifest,
        backend: Backend,
    ): Map<String, String> {
        ComponentIo.check(manifest)
        return Manifest.COMPONENT_NAMES.associateWith { resolveComponent(manifest, it, backend) }
    }

    /** True when [path] is an ONNX Runtime EP context model (`*_ctx.onnx`). */
    fun isContextModel(path: String): Boolean = path.endsWith(CONTEXT_SUFFIX)

    private fun resolveComponent(
        manifest: Manifest,
        name: String,
        backend: Backend,
    ): String {
        val spec = manifest.component(name)
        val wanted = backend.runtime.bundleFormat
        if (spec.format != wanted) {
            val alternatives = Backend.forFormat(spec.format).joinToString(", ") { it.id }
            throw BundleException(
                "component '$name' is ${spec.format} but backend ${backend.id} runs $wanted bundles; " +
                    "choose ${alternatives.ifEmpty { "another bundle" }}",
            )
        }
        for ((kind, tensors) in listOf("input" to spec.inputs, "output" to spec.outputs)) {
            tensors.firstOrNull { it.dtype !in TENSOR_DTYPES }?.let {
                throw BundleException(
                    "component '$name' $kind '${it.name}' is ${it.dtype}; the Android runtimes take float32 " +
                        "and int32 tensors only (export with float32/int32 graph inputs and outputs)",
                )
            }
        }
        val model = spec.files.first()
        if (backend != Backend.ORT_QNN) {
            if (isContextModel(model)) {
                throw BundleException(
                    "component '$name' is a QNN context ($model) compiled for the Qualcomm HTP; only ort-qnn runs it",
                )
            }
            return model
        }
        if (isContextModel(model)) return model
        val sibling = model.removeSuffix(".onnx") + CONTEXT_SUFFIX
        return spec.files.firstOrNull { isContextModel(it) }
            ?: sibling.takeIf { it in manifest.files }
            ?: model
    }
}
