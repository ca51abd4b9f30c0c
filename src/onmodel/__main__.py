from onmodel.cli.app import main

main()
