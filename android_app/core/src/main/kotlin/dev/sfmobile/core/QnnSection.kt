package dev.sfmobile.core

/**
 * Where one component's nodes run in a QNN bundle: inside the HTP context, Quantize/Dequantize
 * left at the graph's edge, and the names of nodes on the CPU (export `--allow-cpu-fallback`).
 */
data class QnnPlacement(
    val htpNodes: Long,
    val ioNodes: Long,
    val cpuNodes: List<String>,
)

/**
 * The manifest's `qnn` section (export/README.md "QNN bundles"): the Snapdragon SoC the context
 * binaries were compiled for (its `htp_arch` and `soc_model` are the QNN provider's options), the
 * QNN SDK that compiled them, and each component's placement.
 */
data class QnnSpec(
    val soc: String,
    val htpArch: Long,
    val socModel: Long,
    val qnnSdk: String,
    val placement: Map<String, QnnPlacement>,
) {
    /** Every node runs inside the HTP context, so `session.disable_cpu_ep_fallback=1` is safe. */
    val htpOnly: Boolean get() = placement.values.all { it.cpuNodes.isEmpty() && it.ioNodes == 0L }
}

/** Reading and checking the `qnn` section, as export/manifest.schema.json and sfmobile/bundle_rules.py do. */
internal object QnnSection {
    const val FORMAT = "qnn"

    /** The precisions only QNN bundles use (they also use fp16). */
    val PRECISIONS = listOf("w8a16", "w8a8")

    // The schema's pattern: `(?![\s\S])` ends the string where `$` would also allow a final newline.
    private const val SOC_PATTERN = "^SM[0-9]{4}(?![\\s\\S])"
    private val SOC = Regex("SM[0-9]{4}")

    fun read(q: JsonFields): QnnSpec {
        q.keys(listOf("soc", "htp_arch", "soc_model", "qnn_sdk", "placement"))
        val soc = q.string("soc")
        if (!SOC.matches(soc)) q.refuse("soc", "'${soc.replace("\n", "\\n")}' does not match '$SOC_PATTERN'")
        val placement = q.obj("placement").keys(Manifest.COMPONENT_NAMES, closed = false)
        return QnnSpec(
            soc = soc,
            htpArch = q.integer("htp_arch", 68),
            socModel = q.integer("soc_model", 1),
            qnnSdk = q.string("qnn_sdk"),
            placement = placement.entries().associate { (name, _) -> name to placementEntry(placement.obj(name)) },
        )
    }

    private fun placementEntry(p: JsonFields): QnnPlacement {
        p.keys(listOf("htp_nodes", "io_nodes", "cpu_nodes"))
        val cpuNodes = p.array("cpu_nodes").mapIndexed { i, node -> p.stringOf(node, p.at("cpu_nodes/$i")) }
        return QnnPlacement(p.integer("htp_nodes", 0), p.integer("io_nodes", 0), cpuNodes)
    }

    /** The `qnn` section is present exactly when the components are format qnn (export/README.md). */
    fun checkPresence(
        manifest: Manifest,
        where: String,
    ) {
        val formats = manifest.components.mapValues { it.value.format }
        val qnn = formats.filterValues { it == FORMAT }.keys
        val other = formats.keys.firstOrNull { it !in qnn }
        if (qnn.isNotEmpty() && other != null) {
            throw BundleException(
                "$where: components.${qnn.first()} is format qnn but components.$other is ${formats[other]}; " +
                    "a QNN bundle's components are all qnn",
            )
        }
        if (qnn.isNotEmpty() && manifest.qnn == null) {
            throw BundleException("$where: components are format qnn but the qnn section is missing")
        }
        if (qnn.isEmpty() && manifest.qnn != null) {
            throw BundleException("$where: qnn section present but the components are format ${formats["unet"]}, not qnn")
        }
    }
}
