import { runService } from "@orbit/config"
import { DispatcherMain } from "./Dispatcher.ts"

runService("dispatcher", DispatcherMain)
