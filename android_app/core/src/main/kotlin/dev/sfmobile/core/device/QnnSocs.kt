package dev.sfmobile.core.device

import dev.sfmobile.core.BundleException
import dev.sfmobile.core.Manifest
import dev.sfmobile.core.QnnSpec

/** A Snapdragon SoC a QNN bundle can be compiled for; [htpArch] and [socModel] are QNN's options. */
data class QnnSoc(
    val name: String,
    val marketingName: String,
    val htpArch: Int,
    val socModel: Int,
)

/**
 * The SoC table of sfmobile/qnn/socs.py (tests/golden/qnn_socs/index.json keeps the two equal)
 * and the checks the phone makes before opening a QNN bundle's contexts with ort-qnn.
 */
object QnnSocs {
    val TABLE =
        listOf(
            QnnSoc("SM8450", "Snapdragon 8 Gen 1", 69, 36),
            QnnSoc("SM8475", "Snapdragon 8+ Gen 1", 69, 42),
            QnnSoc("SM8550", "Snapdragon 8 Gen 2", 73, 43),
            QnnSoc("SM8650", "Snapdragon 8 Gen 3", 75, 57),
            QnnSoc("SM8750", "Snapdragon 8 Elite", 79, 69),
        )

    /** The row of [name] (case-insensitive), or null. */
    fun find(name: String): QnnSoc? = TABLE.firstOrNull { it.name.equals(name.trim(), ignoreCase = true) }

    /**
     * Refuse a QNN bundle compiled for another SoC than [deviceSoc] (Build.SOC_MODEL, API 31+;
     * blank or "unknown" when the phone does not say), as sfmobile/backends/qnn_backend.py does:
     * its context binaries do not load there. Returns the bundle's SoC.
     */
    fun checkDevice(
        manifest: Manifest,
        deviceSoc: String,
    ): QnnSoc {
        val qnn = section(manifest)
        val compiled =
            find(qnn.soc)
                ?: throw BundleException("qnn.soc '${qnn.soc}' is not a SoC this app knows: ${TABLE.joinToString(", ") { it.name }}")
        val device = find(deviceSoc)
        if (device != compiled) {
            val shown = device?.let { "${it.name} (${it.marketingName})" } ?: "'${deviceSoc.ifBlank { "unknown" }}'"
            val advice = device?.let { "export it again with --soc ${it.name}" } ?: "use a Snapdragon phone with that SoC"
            throw BundleException(
                "bundle compiled for ${compiled.name} (${compiled.marketingName}), cannot run on $shown: $advice",
            )
        }
        return compiled
    }

    /**
     * The QNN provider's options for [component] of a QNN bundle (export/README.md): its SoC's
     * `htp_arch` and `soc_model`, and `enable_htp_fp16_precision=1` for an fp16 component.
     */
    fun htpOptions(
        manifest: Manifest,
        component: String,
    ): Map<String, String> {
        val qnn = section(manifest)
        val fp16 = manifest.component(component).precision == "fp16"
        return mapOf("htp_arch" to qnn.htpArch.toString(), "soc_model" to qnn.socModel.toString()) +
            (if (fp16) mapOf("enable_htp_fp16_precision" to "1") else emptyMap())
    }

    private fun section(manifest: Manifest): QnnSpec =
        manifest.qnn ?: throw BundleException("the manifest has no qnn section (not a QNN bundle; export --format qnn)")
}
