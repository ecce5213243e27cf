package dev.sfmobile.app

import android.Manifest
import android.content.pm.PackageManager
import android.os.Build
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.enableEdgeToEdge
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.core.content.ContextCompat
import dev.sfmobile.app.ui.GenerateRoute
import dev.sfmobile.app.ui.GenerateViewModel
import dev.sfmobile.app.ui.SfmobileTheme

/** The app's one screen. Asks once for notifications, which show the generation's progress. */
class MainActivity : ComponentActivity() {
    private val viewModel: GenerateViewModel by viewModels()
    private val notificationPermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) { }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        enableEdgeToEdge()
        if (savedInstanceState == null && Build.VERSION.SDK_INT >= Build.VERSION_CODES.TIRAMISU &&
            ContextCompat.checkSelfPermission(this, Manifest.permission.POST_NOTIFICATIONS) != PackageManager.PERMISSION_GRANTED
        ) {
            notificationPermission.launch(Manifest.permission.POST_NOTIFICATIONS)
        }
        setContent {
            SfmobileTheme {
                GenerateRoute(viewModel)
            }
        }
    }

    override fun onResume() {
        super.onResume()
        viewModel.refreshBundles() // a bundle pushed with adb while the app was in the background
    }
}
